// A local stand-in for the Telegram Bot API, keeping its documented contract for sendMessage:
// POST /bot<token>/sendMessage with a JSON body (chat_id, text), answered {"ok":true,"result":
// Message} with per-chat message ids, {"ok":false,"error_code":403,…} for chat 403 (the bot was
// blocked), or 401 for another token. Every request is kept in `requests`.
'use strict';

const http = require('http');

function startTelegramApi({ port, botToken }) {
    const api = { requests: [] };
    const nextId = new Map();
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            let json = null;
            try { json = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch (e) { /* kept as null */ }
            const record = { method: req.method, path: req.url, headers: req.headers, json };
            api.requests.push(record);
            const reply = (status, body) => {
                record.answer = body;
                res.writeHead(status, { 'content-type': 'application/json' });
                res.end(JSON.stringify(body));
            };
            if (req.url !== `/bot${botToken}/sendMessage`) return reply(401, { ok: false, error_code: 401, description: 'Unauthorized' });
            if (!json || json.chat_id === undefined || typeof json.text !== 'string') {
                return reply(400, { ok: false, error_code: 400, description: 'Bad Request: message text is empty' });
            }
            if (String(json.chat_id) === '403') return reply(403, { ok: false, error_code: 403, description: 'Forbidden: bot was blocked by the user' });
            const id = (nextId.get(json.chat_id) || 0) + 1;
            nextId.set(json.chat_id, id);
            return reply(200, { ok: true, result: { message_id: id, from: { id: 1, is_bot: true, username: 'hodi_bot' }, chat: { id: Number(json.chat_id), type: 'private' }, date: Math.floor(Date.now() / 1000), text: json.text } });
        });
    });
    api.close = () => server.close();
    return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(api)));
}

module.exports = { startTelegramApi };
