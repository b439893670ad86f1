// A local stand-in for the Telegram Bot API, keeping its documented contract for sendMessage:
// POST /bot<token>/sendMessage with a JSON body (chat_id, text), answered {"ok":true,"result":
// Message} with per-chat message ids, {"ok":false,"error_code":403,…} for chat 403 (the bot was
// blocked), or 401 for another token. Every request is kept in `requests` (with its `json`).
'use strict';

const { serveContract, json } = require('./contract');

async function startTelegramApi({ port, botToken }) {
    const nextId = new Map();
    return serveContract(port, (record) => {
        const body = json(record);
        record.json = body;
        if (record.path !== `/bot${botToken}/sendMessage`) return [401, { ok: false, error_code: 401, description: 'Unauthorized' }];
        if (!body || body.chat_id === undefined || typeof body.text !== 'string') {
            return [400, { ok: false, error_code: 400, description: 'Bad Request: message text is empty' }];
        }
        if (String(body.chat_id) === '403') return [403, { ok: false, error_code: 403, description: 'Forbidden: bot was blocked by the user' }];
        const id = (nextId.get(body.chat_id) || 0) + 1;
        nextId.set(body.chat_id, id);
        return [200, { ok: true, result: { message_id: id, from: { id: 1, is_bot: true, username: 'hodi_bot' }, chat: { id: Number(body.chat_id), type: 'private' }, date: Math.floor(Date.now() / 1000), text: body.text } }];
    });
}

module.exports = { startTelegramApi };
