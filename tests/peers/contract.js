// A recording HTTP server for the local stand-ins of providers' APIs (at_api.js, twilio_api.js …):
// each request is kept in `api.requests` as { method, path, headers, raw, answer }, and answered
// with what `answer(record)` returns (or resolves to): [status, body], a string body as text,
// anything else as JSON.
'use strict';

const http = require('http');

function serveContract(port, answer) {
    const api = { requests: [] };
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const record = { method: req.method, path: req.url, headers: req.headers, raw: Buffer.concat(chunks).toString('utf8') };
            api.requests.push(record);
            // An answer may also be a promise of one (a long poll held open).
            Promise.resolve(answer(record)).then(([status, body]) => {
                record.answer = body;
                res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
                res.end(typeof body === 'string' ? body : JSON.stringify(body));
            });
        });
    });
    api.close = () => server.close();
    return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(api)));
}

// The JSON body of a request, or null.
function json(record) {
    try { return JSON.parse(record.raw); } catch (e) { return null; }
}

module.exports = { serveContract, json };
