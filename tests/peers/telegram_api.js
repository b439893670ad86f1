// A local stand-in for the Telegram Bot API, keeping its documented contract for sendMessage:
// POST /bot<token>/sendMessage with a JSON body (chat_id, text), answered {"ok":true,"result":
// Message} with per-chat message ids, {"ok":false,"error_code":403,…} for chat 403 (the bot was
// blocked), or 401 for another token; deleteWebhook, and getUpdates (offset, timeout: long
// polling; 409 while a webhook is set). Every request is kept in `requests` (with its `json`).
'use strict';

const { serveContract, json } = require('./contract');

async function startTelegramApi({ port, botToken }) {
    const nextId = new Map();
    // getUpdates: updates wait in `queue` until a request's offset passes them (which confirms
    // them); a request with nothing to give is held up to its `timeout` seconds.
    const queue = [];
    const waiters = [];
    const polls = [];
    let webhookDeleted = false;
    const give = (offset) => queue.filter((u) => u.update_id >= offset).slice(0, 100);
    const getUpdates = (body) => {
        if (!webhookDeleted) return [409, { ok: false, error_code: 409, description: "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first" }];
        const offset = Number(body.offset || 0);
        polls.push({ offset, timeout: body.timeout, limit: body.limit, allowed_updates: body.allowed_updates });
        while (queue.length && queue[0].update_id < offset) queue.shift();
        const now = give(offset);
        if (now.length || !body.timeout) return [200, { ok: true, result: now }];
        return new Promise((resolve) => {
            const waiter = () => resolve([200, { ok: true, result: give(offset) }]);
            waiters.push(waiter);
            setTimeout(() => { const i = waiters.indexOf(waiter); if (i >= 0) { waiters.splice(i, 1); waiter(); } }, Math.min(Number(body.timeout), 30) * 1000);
        });
    };
    const api = await serveContract(port, (record) => {
        const body = json(record);
        record.json = body;
        if (record.path === `/bot${botToken}/deleteWebhook`) { webhookDeleted = true; return [200, { ok: true, result: true, description: 'Webhook was deleted' }]; }
        if (record.path === `/bot${botToken}/getUpdates`) return getUpdates(body || {});
        const media = { sendPhoto: 'photo', sendAudio: 'audio', sendVoice: 'voice', sendVideo: 'video', sendDocument: 'document', sendSticker: 'sticker' };
        const method = record.path.startsWith(`/bot${botToken}/`) ? record.path.slice(`/bot${botToken}/`.length) : null;
        if (method && (media[method] || method === 'sendLocation')) {
            const ok = method === 'sendLocation' ? typeof body.latitude === 'number' && typeof body.longitude === 'number' : typeof body[media[method]] === 'string';
            if (!ok) return [400, { ok: false, error_code: 400, description: `Bad Request: there is no ${media[method] || 'location'} in the request` }];
            const id = (nextId.get(body.chat_id) || 0) + 1;
            nextId.set(body.chat_id, id);
            return [200, { ok: true, result: { message_id: id, chat: { id: Number(body.chat_id), type: 'private' }, date: Math.floor(Date.now() / 1000) } }];
        }
        if (record.path !== `/bot${botToken}/sendMessage`) return [401, { ok: false, error_code: 401, description: 'Unauthorized' }];
        if (!body || body.chat_id === undefined || typeof body.text !== 'string') {
            return [400, { ok: false, error_code: 400, description: 'Bad Request: message text is empty' }];
        }
        if (String(body.chat_id) === '403') return [403, { ok: false, error_code: 403, description: 'Forbidden: bot was blocked by the user' }];
        const id = (nextId.get(body.chat_id) || 0) + 1;
        nextId.set(body.chat_id, id);
        return [200, { ok: true, result: { message_id: id, from: { id: 1, is_bot: true, username: 'hodi_bot' }, chat: { id: Number(body.chat_id), type: 'private' }, date: Math.floor(Date.now() / 1000), text: body.text } }];
    });
    api.polls = polls;
    // An update for the pollers; wakes a held getUpdates.
    api.push = (update) => {
        queue.push(update);
        for (const w of waiters.splice(0)) w();
    };
    return api;
}

module.exports = { startTelegramApi };
