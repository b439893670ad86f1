// A local stand-in for Twilio's Messages API, keeping its documented contract: POST
// /2010-04-01/Accounts/{AccountSid}/Messages.json with HTTP Basic auth (account SID, auth token)
// and a form body (To, From, Body, StatusCallback), answered 201 with the message resource (sid
// SM…, status queued), 400 with Twilio's error JSON (code 21211) for +254700000400, or 401 for
// bad credentials. Every request is kept in `requests` (with its `form`). `sign(url, fields)`
// makes the X-Twilio-Signature Twilio would send for a callback, as its documentation describes.
'use strict';

const crypto = require('crypto');
const { serveContract } = require('./contract');

async function startTwilioApi({ port, accountSid, authToken }) {
    let next = 1;
    const api = await serveContract(port, (record) => {
        const form = Object.fromEntries(new URLSearchParams(record.raw));
        record.form = form;
        const basic = `Basic ${Buffer.from(`${accountSid}:${authToken}`).toString('base64')}`;
        if (record.headers.authorization !== basic) return [401, { code: 20003, message: 'Authenticate', status: 401 }];
        if (record.method !== 'POST' || record.path !== `/2010-04-01/Accounts/${accountSid}/Messages.json`) {
            return [404, { code: 20404, message: 'The requested resource was not found', status: 404 }];
        }
        if (!form.Body && !form.MediaUrl && !form.ContentSid) {
            return [400, { code: 21619, message: 'A text message body or media urls must be specified.', status: 400 }];
        }
        if (form.ContentVariables !== undefined) {
            try { JSON.parse(form.ContentVariables); } catch (e) { return [400, { code: 21656, message: 'The ContentVariables Parameter is invalid.', status: 400 }]; }
        }
        if (form.To.endsWith('+254700000400')) {
            return [400, { code: 21211, message: `The 'To' number ${form.To} is not a valid phone number.`, status: 400 }];
        }
        const sid = `SM${String(next++).padStart(32, '0')}`;
        return [201, { sid, account_sid: accountSid, to: form.To, from: form.From, body: form.Body, status: 'queued', num_segments: '1' }];
    });
    api.sign = (url, fields) => {
        const data = url + Object.keys(fields).sort().map((k) => k + fields[k]).join('');
        return crypto.createHmac('sha1', authToken).update(Buffer.from(data, 'utf8')).digest('base64');
    };
    return api;
}

module.exports = { startTwilioApi };
