// A local stand-in for Africa's Talking's SMS API, keeping its documented contract: POST
// /version1/messaging with the `apiKey` header and a form body (username, to, message, from),
// answered 201 with SMSMessageData.Recipients (statusCode 101 and an ATXid_ message id; 403
// InvalidPhoneNumber for +254700000403; HTTP 500 once for +254700000500), or 401 for a wrong key
// or username. Every request is kept in `requests` with the answer it got.
'use strict';

const http = require('http');

function startAtApi({ port, username, apiKey }) {
    const api = { requests: [] };
    let next = 1;
    const failedOnce = new Set();
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const raw = Buffer.concat(chunks).toString('utf8');
            const form = Object.fromEntries(new URLSearchParams(raw));
            const record = { method: req.method, path: req.url, headers: req.headers, form };
            api.requests.push(record);
            const reply = (status, body) => {
                record.answer = body;
                res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
                res.end(typeof body === 'string' ? body : JSON.stringify(body));
            };
            if (req.method !== 'POST' || req.url !== '/version1/messaging') return reply(404, 'Not found');
            if (req.headers.apikey !== apiKey || form.username !== username) return reply(401, 'The supplied authentication is invalid');
            if (form.to === '+254700000500' && !failedOnce.has(form.to)) {
                failedOnce.add(form.to);
                return reply(500, 'Internal Server Error');
            }
            const recipient = form.to === '+254700000403'
                ? { statusCode: 403, number: form.to, status: 'InvalidPhoneNumber', cost: '0', messageId: 'None' }
                : { statusCode: 101, number: form.to, status: 'Success', cost: 'KES 0.8000', messageId: `ATXid_${next++}` };
            const sent = recipient.statusCode === 101 ? 1 : 0;
            return reply(201, { SMSMessageData: { Message: `Sent to ${sent}/1 Total Cost: ${recipient.cost}`, Recipients: [recipient] } });
        });
    });
    api.close = () => server.close();
    return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(api)));
}

module.exports = { startAtApi };
