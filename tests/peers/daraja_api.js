// A local stand-in for Safaricom's Daraja API (M-Pesa), keeping its documented contract:
// - GET /oauth/v1/generate?grant_type=client_credentials with Basic auth (consumer key:secret)
//   answers { access_token, expires_in: "3599" } (400 for wrong credentials);
// - POST /mpesa/stkpush/v1/processrequest (Bearer token) checks the STK push fields — Password is
//   base64(BusinessShortCode + passkey + Timestamp), Timestamp is Nairobi time YYYYMMDDHHmmss
//   within two minutes of now — and answers ResponseCode "0" with a CheckoutRequestID; 400
//   "Invalid PhoneNumber" for 254700000400;
// - POST /mpesa/b2c/v3/paymentrequest (Bearer) checks the B2C fields and answers ResponseCode "0"
//   with a ConversationID; a second request with the same OriginatorConversationID is refused
//   (as Daraja does), and 254700000503 gets one 503 first.
// Every request is kept in `requests`, with `problems` listing any field that broke the contract.
'use strict';

const { serveContract, json } = require('./contract');

function nairobiNow(offsetMs = 0) {
    const t = new Date(Date.now() + offsetMs + 3 * 3600 * 1000);
    const p = (n) => String(n).padStart(2, '0');
    return `${t.getUTCFullYear()}${p(t.getUTCMonth() + 1)}${p(t.getUTCDate())}${p(t.getUTCHours())}${p(t.getUTCMinutes())}${p(t.getUTCSeconds())}`;
}

async function startDarajaApi({ port, consumerKey, consumerSecret, passkey, initiator, credential }) {
    let next = 1;
    const tokens = new Set();
    const originators = new Set();
    const failedOnce = new Set();
    const basic = `Basic ${Buffer.from(`${consumerKey}:${consumerSecret}`).toString('base64')}`;
    const api = await serveContract(port, (record) => {
        const problems = [];
        record.problems = problems;
        const need = (cond, what) => { if (!cond) problems.push(what); };
        if (record.method === 'GET' && record.path === '/oauth/v1/generate?grant_type=client_credentials') {
            if (record.headers.authorization !== basic) return [400, { errorCode: '400.008.01', errorMessage: 'Invalid Authentication passed' }];
            const token = `tok-${next++}`;
            tokens.add(token);
            return [200, { access_token: token, expires_in: '3599' }];
        }
        const bearer = (record.headers.authorization || '').replace(/^Bearer /, '');
        if (!tokens.has(bearer)) return [401, { errorCode: '404.001.03', errorMessage: 'Invalid Access Token' }];
        const body = json(record);
        record.body = body;
        if (!body) return [400, { errorCode: '400.002.05', errorMessage: 'Invalid Request Payload' }];
        if (record.method === 'POST' && record.path === '/mpesa/stkpush/v1/processrequest') {
            need(/^\d{14}$/.test(body.Timestamp), 'Timestamp');
            const earliest = nairobiNow(-120000);
            const latest = nairobiNow(120000);
            need(body.Timestamp >= earliest && body.Timestamp <= latest, `Timestamp ${body.Timestamp} is not Nairobi time now`);
            need(body.Password === Buffer.from(`${body.BusinessShortCode}${passkey}${body.Timestamp}`).toString('base64'), 'Password');
            need(['CustomerPayBillOnline', 'CustomerBuyGoodsOnline'].includes(body.TransactionType), 'TransactionType');
            need(Number.isInteger(body.Amount) && body.Amount > 0, 'Amount');
            need(/^2547\d{8}$/.test(body.PartyA) && body.PhoneNumber === body.PartyA, 'PartyA/PhoneNumber');
            need(body.PartyB === body.BusinessShortCode, 'PartyB');
            need(/^https?:\/\//.test(body.CallBackURL), 'CallBackURL');
            need(typeof body.AccountReference === 'string' && body.AccountReference.length >= 1 && body.AccountReference.length <= 12, 'AccountReference');
            need(typeof body.TransactionDesc === 'string' && body.TransactionDesc.length >= 1 && body.TransactionDesc.length <= 13, 'TransactionDesc');
            if (body.PhoneNumber === '254700000400') return [400, { requestId: `r-${next}`, errorCode: '400.002.02', errorMessage: 'Bad Request - Invalid PhoneNumber' }];
            const n = next++;
            if (api.instantResult !== undefined) {
                // Daraja calling back the moment it answers: the result may beat Hodi's own
                // record of the request it just made.
                const result = daraja.stkResult(`ws_CO_${n}`, api.instantResult, body.Amount, body.PhoneNumber);
                api.instantResult = undefined;
                setImmediate(async () => {
                    const r = await fetch(body.CallBackURL, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(result) });
                    api.callbacks.push({ checkoutRequestId: `ws_CO_${n}`, status: r.status });
                });
            }
            return [200, {
                MerchantRequestID: `29115-${n}-1`,
                CheckoutRequestID: `ws_CO_${n}`,
                ResponseCode: '0',
                ResponseDescription: 'Success. Request accepted for processing',
                CustomerMessage: 'Success. Request accepted for processing',
            }];
        }
        if (record.method === 'POST' && record.path === '/mpesa/b2c/v3/paymentrequest') {
            need(body.InitiatorName === initiator, 'InitiatorName');
            need(body.SecurityCredential === credential, 'SecurityCredential');
            need(['BusinessPayment', 'SalaryPayment', 'PromotionPayment'].includes(body.CommandID), 'CommandID');
            need(Number.isInteger(body.Amount) && body.Amount > 0, 'Amount');
            need(/^\d{5,7}$/.test(body.PartyA), 'PartyA');
            need(/^2547\d{8}$/.test(body.PartyB), 'PartyB');
            need(/^https?:\/\//.test(body.ResultURL) && /^https?:\/\//.test(body.QueueTimeOutURL), 'ResultURL/QueueTimeOutURL');
            need(typeof body.OriginatorConversationID === 'string' && body.OriginatorConversationID.length > 0, 'OriginatorConversationID');
            if (body.PartyB === '254700000503' && !failedOnce.has(body.PartyB)) {
                failedOnce.add(body.PartyB);
                return [503, { errorCode: '503.001.01', errorMessage: 'Service Unavailable' }];
            }
            if (originators.has(body.OriginatorConversationID)) {
                return [400, { errorCode: '400.002.02', errorMessage: 'Duplicate OriginatorConversationID' }];
            }
            originators.add(body.OriginatorConversationID);
            const n = next++;
            return [200, {
                ConversationID: `AG_2026_${n}`,
                OriginatorConversationID: body.OriginatorConversationID,
                ResponseCode: '0',
                ResponseDescription: 'Accept the service request successfully.',
            }];
        }
        return [404, { errorCode: '404.001.01', errorMessage: 'Resource not found' }];
    });
    api.callbacks = [];
    return api;
}

// The callbacks Daraja posts, as documented.
const daraja = {
    stkResult(checkoutRequestId, resultCode, amount, phone) {
        const cb = {
            MerchantRequestID: '29115-1-1',
            CheckoutRequestID: checkoutRequestId,
            ResultCode: resultCode,
            ResultDesc: resultCode === 0 ? 'The service request is processed successfully.' : 'Request cancelled by user',
        };
        if (resultCode === 0) {
            cb.CallbackMetadata = { Item: [
                { Name: 'Amount', Value: amount },
                { Name: 'MpesaReceiptNumber', Value: `NLJ7RT${checkoutRequestId.slice(-4)}` },
                { Name: 'TransactionDate', Value: 20261206203000 },
                { Name: 'PhoneNumber', Value: Number(phone) },
            ] };
        }
        return { Body: { stkCallback: cb } };
    },
    b2cResult(request, answer, resultCode) {
        return { Result: {
            ResultType: 0,
            ResultCode: resultCode,
            ResultDesc: resultCode === 0 ? 'The service request is processed successfully.' : 'The initiator information is invalid.',
            OriginatorConversationID: request.body.OriginatorConversationID,
            ConversationID: answer.ConversationID,
            TransactionID: resultCode === 0 ? 'NLJ41HAY6Q' : '',
            ReferenceData: { ReferenceItem: { Key: 'QueueTimeoutURL', Value: request.body.QueueTimeOutURL } },
        } };
    },
    c2b(transId, shortCode, msisdn, amount) {
        return {
            TransactionType: 'Pay Bill', TransID: transId, TransTime: '20261206203000', TransAmount: String(amount),
            BusinessShortCode: shortCode, BillRefNumber: 'acc-1', InvoiceNumber: '', OrgAccountBalance: '',
            ThirdPartyTransID: '', MSISDN: msisdn, FirstName: 'Jane', MiddleName: '', LastName: 'Doe',
        };
    },
};

module.exports = { startDarajaApi, daraja };
