// A local stand-in for Africa's Talking's SMS API, keeping its documented contract: POST
// /version1/messaging with the `apiKey` header and a form body (username, to, message, from),
// answered 201 with SMSMessageData.Recipients (statusCode 101 and an ATXid_ message id; 403
// InvalidPhoneNumber for +254700000403; HTTP 500 once for +254700000500), or 401 for a wrong key
// or username; and POST /version1/airtime/send (username, recipients as a JSON list) answered with
// a Sent response and an ATQid_ request id per recipient. Every request is kept in `requests`
// (with its `form`).
'use strict';

const { serveContract } = require('./contract');

async function startAtApi({ port, username, apiKey }) {
    let next = 1;
    const failedOnce = new Set();
    const idempotent = new Map();
    // Airtime: `recipients` is a JSON list of { phoneNumber, currencyCode, amount }; the same
    // Idempotency-Key gets the first answer again.
    const airtime = (form, record) => {
        let recipients;
        try { recipients = JSON.parse(form.recipients); } catch (e) { return [400, 'recipients must be JSON']; }
        record.recipients = recipients;
        const key = record.headers['idempotency-key'];
        if (key && idempotent.has(key)) return [201, idempotent.get(key)];
        const responses = recipients.map((r) => ({
            phoneNumber: r.phoneNumber,
            errorMessage: 'None',
            amount: `${r.currencyCode} ${Number(r.amount).toFixed(4)}`,
            status: 'Sent',
            requestId: `ATQid_${next++}`,
            discount: `${r.currencyCode} 0.6000`,
        }));
        const answer = { errorMessage: 'None', numSent: responses.length, totalAmount: responses[0] && responses[0].amount, totalDiscount: 'KES 0.6000', responses };
        if (key) idempotent.set(key, answer);
        return [201, answer];
    };
    return serveContract(port, (record) => {
        const form = Object.fromEntries(new URLSearchParams(record.raw));
        record.form = form;
        if (record.headers.apikey !== apiKey || form.username !== username) return [401, 'The supplied authentication is invalid'];
        if (record.method === 'POST' && record.path === '/version1/airtime/send') return airtime(form, record);
        if (record.method !== 'POST' || record.path !== '/version1/messaging') return [404, 'Not found'];
        if (form.to === '+254700000500' && !failedOnce.has(form.to)) {
            failedOnce.add(form.to);
            return [500, 'Internal Server Error'];
        }
        const recipient = form.to === '+254700000403'
            ? { statusCode: 403, number: form.to, status: 'InvalidPhoneNumber', cost: '0', messageId: 'None' }
            : { statusCode: 101, number: form.to, status: 'Success', cost: 'KES 0.8000', messageId: `ATXid_${next++}` };
        const sent = recipient.statusCode === 101 ? 1 : 0;
        return [201, { SMSMessageData: { Message: `Sent to ${sent}/1 Total Cost: ${recipient.cost}`, Recipients: [recipient] } }];
    });
}

module.exports = { startAtApi };
