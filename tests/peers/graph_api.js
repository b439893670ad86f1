// A local stand-in for Meta's Graph API send endpoints, keeping their documented contract: POST
// /{version}/{phone_number_id}/messages (WhatsApp Cloud API) answered with `messages[0].id`
// (wamid.…), or error 131030 for 254700000400; POST /{version}/me/messages (Messenger) answered
// with `message_id`; a wrong bearer token gets OAuthException 190. Every request is kept in
// `requests` (with its `json`). `sign(body)` makes the X-Hub-Signature-256 Meta sends with webhooks.
'use strict';

const crypto = require('crypto');
const { serveContract, json } = require('./contract');

async function startGraphApi({ port, version, phoneNumberId, accessToken, appSecret }) {
    let next = 1;
    const api = await serveContract(port, (record) => {
        const body = json(record);
        record.json = body;
        if (record.headers.authorization !== `Bearer ${accessToken}`) {
            return [401, { error: { message: 'Invalid OAuth access token.', type: 'OAuthException', code: 190, fbtrace_id: 'T' } }];
        }
        if (record.method === 'POST' && record.path === `/${version}/${phoneNumberId}/messages`) {
            if (body.to === '254700000400') {
                return [400, { error: { message: '(#131030) Recipient phone number not in allowed list', type: 'OAuthException', code: 131030, fbtrace_id: 'T' } }];
            }
            // The message object the type names must be there, with what that type requires.
            const content = body[body.type] || {};
            const valid = {
                text: () => typeof content.body === 'string',
                image: () => typeof content.link === 'string', audio: () => typeof content.link === 'string',
                video: () => typeof content.link === 'string', document: () => typeof content.link === 'string',
                sticker: () => typeof content.link === 'string',
                location: () => typeof content.latitude === 'number' && typeof content.longitude === 'number',
                template: () => typeof content.name === 'string' && content.language && typeof content.language.code === 'string'
                    && (!content.components || content.components.every((c) => c.type && Array.isArray(c.parameters))),
            }[body.type];
            if (body.messaging_product !== 'whatsapp' || !valid || !valid()) {
                return [400, { error: { message: '(#100) Invalid parameter', type: 'OAuthException', code: 100, fbtrace_id: 'T' } }];
            }
            return [200, { messaging_product: 'whatsapp', contacts: [{ input: body.to, wa_id: body.to }], messages: [{ id: `wamid.${next++}` }] }];
        }
        if (record.method === 'POST' && record.path === `/${version}/me/messages`) {
            const m = body.message || {};
            if (typeof m.text !== 'string' && !(m.attachment && m.attachment.type && m.attachment.payload && m.attachment.payload.url)) {
                return [400, { error: { message: '(#100) Must send either message or attachment', type: 'OAuthException', code: 100, fbtrace_id: 'T' } }];
            }
            return [200, { recipient_id: body.recipient.id, message_id: `m_${next++}` }];
        }
        return [404, { error: { message: 'Unknown path', type: 'GraphMethodException', code: 100 } }];
    });
    api.sign = (payload) => `sha256=${crypto.createHmac('sha256', appSecret).update(payload).digest('hex')}`;
    return api;
}

module.exports = { startGraphApi };
