// A local stand-in for Meta's Graph API send endpoints, keeping their documented contract: POST
// /{version}/{phone_number_id}/messages (WhatsApp Cloud API) answered with `messages[0].id`
// (wamid.…), or error 131030 for 254700000400; POST /{version}/me/messages (Messenger) answered
// with `message_id`; a wrong bearer token gets OAuthException 190. `sign(body)` makes the
// X-Hub-Signature-256 Meta sends with webhooks.
'use strict';

const http = require('http');
const crypto = require('crypto');

function startGraphApi({ port, version, phoneNumberId, accessToken, appSecret }) {
    const api = { requests: [] };
    let next = 1;
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
            if (req.headers.authorization !== `Bearer ${accessToken}`) {
                return reply(401, { error: { message: 'Invalid OAuth access token.', type: 'OAuthException', code: 190, fbtrace_id: 'T' } });
            }
            if (req.method === 'POST' && req.url === `/${version}/${phoneNumberId}/messages`) {
                if (json.to === '254700000400') {
                    return reply(400, { error: { message: '(#131030) Recipient phone number not in allowed list', type: 'OAuthException', code: 131030, fbtrace_id: 'T' } });
                }
                return reply(200, { messaging_product: 'whatsapp', contacts: [{ input: json.to, wa_id: json.to }], messages: [{ id: `wamid.${next++}` }] });
            }
            if (req.method === 'POST' && req.url === `/${version}/me/messages`) {
                return reply(200, { recipient_id: json.recipient.id, message_id: `m_${next++}` });
            }
            return reply(404, { error: { message: 'Unknown path', type: 'GraphMethodException', code: 100 } });
        });
    });
    api.sign = (body) => `sha256=${crypto.createHmac('sha256', appSecret).update(body).digest('hex')}`;
    api.close = () => server.close();
    return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(api)));
}

module.exports = { startGraphApi };
