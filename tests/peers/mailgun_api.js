// A local stand-in for Mailgun's sending API, keeping its documented contract: POST
// /v3/{domain}/messages with Basic auth (api, the API key) and the message's fields (from, to, cc,
// bcc, subject, text, html), answered {"id": "<…@domain>", "message": "Queued. Thank you."}, 400 for
// a recipient at invalid.example, 401 for another key. Fields are kept as arrays (cc and bcc may
// repeat). `sign()` makes the signature Mailgun puts on webhooks and routes.
'use strict';

const http = require('http');
const crypto = require('crypto');

function startMailgunApi({ port, domain, apiKey, signingKey }) {
    const api = { requests: [] };
    let next = 1;
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const form = {};
            for (const [k, v] of new URLSearchParams(Buffer.concat(chunks).toString('utf8'))) (form[k] = form[k] || []).push(v);
            const record = { method: req.method, path: req.url, headers: req.headers, form };
            api.requests.push(record);
            const reply = (status, body) => {
                record.answer = body;
                res.writeHead(status, { 'content-type': 'application/json' });
                res.end(JSON.stringify(body));
            };
            if (req.headers.authorization !== `Basic ${Buffer.from(`api:${apiKey}`).toString('base64')}`) return reply(401, { message: 'Invalid private key' });
            if (req.method !== 'POST' || req.url !== `/v3/${domain}/messages`) return reply(404, { message: 'Not found' });
            if ((form.to || []).some((t) => t.endsWith('@invalid.example'))) {
                return reply(400, { message: "'to' parameter is not a valid address. please check documentation" });
            }
            return reply(200, { id: `<20261206.${next++}@${domain}>`, message: 'Queued. Thank you.' });
        });
    });
    api.sign = () => {
        const timestamp = String(Math.floor(Date.now() / 1000));
        const token = crypto.randomBytes(25).toString('hex');
        const signature = crypto.createHmac('sha256', signingKey).update(timestamp + token).digest('hex');
        return { timestamp, token, signature };
    };
    api.close = () => server.close();
    return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(api)));
}

module.exports = { startMailgunApi };
