// A local stand-in for Mailgun's sending API, keeping its documented contract: POST
// /v3/{domain}/messages with Basic auth (api, the API key) and the message's fields (from, to, cc,
// bcc, subject, text, html), answered {"id": "<…@domain>", "message": "Queued. Thank you."}, 400 for
// a recipient at invalid.example, 401 for another key. Every request is kept in `requests`, its
// fields in `form` as arrays (cc and bcc may repeat). `sign()` makes the signature Mailgun puts on
// webhooks and routes.
'use strict';

const crypto = require('crypto');
const { serveContract } = require('./contract');

async function startMailgunApi({ port, domain, apiKey, signingKey }) {
    let next = 1;
    const api = await serveContract(port, (record) => {
        const form = {};
        for (const [k, v] of new URLSearchParams(record.raw)) (form[k] = form[k] || []).push(v);
        record.form = form;
        if (record.headers.authorization !== `Basic ${Buffer.from(`api:${apiKey}`).toString('base64')}`) return [401, { message: 'Invalid private key' }];
        if (record.method !== 'POST' || record.path !== `/v3/${domain}/messages`) return [404, { message: 'Not found' }];
        if ((form.to || []).some((t) => t.endsWith('@invalid.example'))) {
            return [400, { message: "'to' parameter is not a valid address. please check documentation" }];
        }
        return [200, { id: `<20261206.${next++}@${domain}>`, message: 'Queued. Thank you.' }];
    });
    api.sign = () => {
        const timestamp = String(Math.floor(Date.now() / 1000));
        const token = crypto.randomBytes(25).toString('hex');
        const signature = crypto.createHmac('sha256', signingKey).update(timestamp + token).digest('hex');
        return { timestamp, token, signature };
    };
    return api;
}

module.exports = { startMailgunApi };
