// Real providers end to end: the official Elarian JS SDK (npm elarian@0.2.25) sends through Hodi to
// a real SMSC (npm `smpp` in server mode, see smsc.js) and a real SMTP server (npm `smtp-server`),
// and hears back through messageStatus and receivedSms.
//
// Usage: node providers_e2e.js <scenario>, with Hodi's addresses and credentials in the
// environment as for sdk_e2e.js, and SMSC_PORT / SMTP_PORT naming where this script listens (Hodi's
// configuration points its providers there). Prints one JSON line and exits 0, or exits 1 with the
// failed expectation.
'use strict';

const assert = require('assert');
const { startSmsc } = require('./smsc');

const { env, sleep, within, until } = require('./harness');

const host = env('HODI_HOST');
const orgId = env('HODI_ORG');
const appId = env('HODI_APP');
const apiKey = env('HODI_KEY');


function connectApp(before) {
    const { Elarian } = require('elarian');
    const client = new Elarian({ orgId, appId, apiKey });
    before(client);
    const connected = new Promise((resolve, reject) => {
        client.on('connected', () => resolve(client));
        client.on('error', (err) => reject(err instanceof Error ? err : new Error(String(err && err.message ? err.message : err))));
    });
    client.connect({ host, port: Number(env('HODI_TLS_PORT')) });
    return within(10000, 'app connection', connected);
}

// A line-by-line SMTP client (a sending mail server's side): `send(line)` writes a command and
// waits for its whole reply (multi-line replies included), `upgrade()` starts TLS on the socket
// after a 220 to STARTTLS, trusting Hodi's certificate (NODE_EXTRA_CA_CERTS).
function smtpClient(port) {
    const net = require('net');
    const tls = require('tls');
    let socket = net.connect(port, '127.0.0.1');
    let buffered = '';
    const waiting = [];
    const pump = () => {
        while (waiting.length) {
            const lines = buffered.split('\r\n');
            const end = lines.slice(0, -1).findIndex((l) => /^\d{3}( |$)/.test(l));
            if (end < 0) return;
            buffered = lines.slice(end + 1).join('\r\n');
            waiting.shift()({ code: Number(lines[end].slice(0, 3)), text: lines.slice(0, end + 1).join('\n') });
        }
    };
    const listen = (s) => s.on('data', (d) => { buffered += d.toString('utf8'); pump(); });
    listen(socket);
    const reply = (what = 'the greeting') => within(10000, `the SMTP reply to ${what.slice(0, 40)}`, new Promise((resolve) => { waiting.push(resolve); pump(); }));
    return {
        reply,
        send: (line) => { socket.write(`${line}\r\n`); return reply(line); },
        upgrade: () => new Promise((resolve, reject) => {
            socket.removeAllListeners('data');
            const secured = tls.connect({ socket, servername: 'localhost' }, () => resolve());
            secured.on('error', reject);
            socket = secured;
            listen(socket);
        }),
        encrypted: () => Boolean(socket.encrypted),
    };
}

const scenarios = {
    // SMS through an SMSC: short, long (concatenated) and non-Latin texts arrive whole; receipts
    // become DELIVERED once every part is delivered; an MO becomes receivedSms; throttling slows
    // Hodi down; the SMSC going away and coming back loses nothing; nothing arrives twice.
    async smpp() {
        const smsc = startSmsc({ port: Number(env('SMSC_PORT')), systemId: 'hodi', password: 'secret' });
        await smsc.listen();
        const count = (pred) => smsc.events.filter(pred).length;
        await until(20000, 'Hodi binding to the SMSC twice (binds = 2)', () => count((e) => e.event === 'bound') >= 2);
        assert.strictEqual(smsc.events.find((e) => e.event === 'bound').interface_version, 0x34);

        const statuses = [];
        const received = [];
        const app = await connectApp((c) => {
            c.on('messageStatus', (n, customer, appData, cb) => { statuses.push(n); cb(null, appData); });
            c.on('receivedSms', (n, customer, appData, cb) => { received.push({ n, customer }); cb(null, appData); });
        });
        const has = (id, status) => statuses.some((s) => s.messageId === id && s.status === status);
        const sms = { number: '21356', channel: 'sms' };
        const customer = new app.Customer({ number: '+254700000001', provider: 'cellular' });
        const send = async (text) => {
            const r = await customer.sendMessage(sms, { body: { text } });
            assert.strictEqual(r.status, 'queued', r.description);
            assert.match(r.description, /provider telco/);
            return r.messageId;
        };
        const arrival = (text) => until(15000, `"${text.slice(0, 24)}…" at the SMSC`,
            () => smsc.events.find((e) => e.event === 'message' && e.text === text));

        const short = 'hello from hodi';
        const long = `${'A'.repeat(100)} ${'B'.repeat(100)}`;
        const unicode = 'Habari 你好, karibu 😀';
        const ids = [];
        for (const text of [short, long, unicode]) ids.push(await send(text));
        const [m1, m2, m3] = [await arrival(short), await arrival(long), await arrival(unicode)];
        assert.strictEqual(m1.ids.length, 1);
        assert.strictEqual(m1.destination, '254700000001');
        assert.strictEqual(m1.source, '21356');
        assert.strictEqual(m1.data_coding, 0, 'GSM-7 for a GSM text');
        assert.strictEqual(m2.ids.length, 2, 'a 201-character text is two concatenated parts');
        assert.strictEqual(m3.data_coding, 8, 'UCS-2 for a text GSM-7 cannot carry');
        const submit = smsc.events.find((e) => e.event === 'submit_sm');
        assert.strictEqual(submit.registered_delivery & 1, 1, 'delivery receipts are asked for');
        await until(10000, 'SENT for all three', () => ids.every((id) => has(id, 'sent')));

        // Receipts: the long message is delivered only when both its parts are.
        smsc.receipt(m1.ids[0]);
        smsc.receipt(m2.ids[0]);
        smsc.receipt(m3.ids[0], 'UNDELIV');
        await until(10000, 'DELIVERED for the short text', () => has(ids[0], 'delivered'));
        await until(10000, 'FAILED for the undelivered one', () => has(ids[2], 'failed'));
        await sleep(300);
        assert.ok(!has(ids[1], 'delivered'), 'the long text is not delivered with one part of two');
        smsc.receipt(m2.ids[1]);
        await until(10000, 'DELIVERED for the long text', () => has(ids[1], 'delivered'));

        // Customers write in, in GSM-7 and in UCS-2.
        smsc.mo('254700000009', '21356', 'Hi there, é ü {x} €');
        const mo = await until(10000, 'receivedSms', () => received[0]);
        assert.strictEqual(mo.n.text, 'Hi there, é ü {x} €');
        assert.strictEqual(mo.customer.customerNumber.number, '+254700000009');
        smsc.mo('254700000010', '21356', 'Karibu 你好', 8);
        const mo2 = await until(10000, 'a second receivedSms', () => received[1]);
        assert.strictEqual(mo2.n.text, 'Karibu 你好');

        // Long messages in parts, last part first and across both binds: one receivedSms each,
        // whole, even when a UCS-2 part ends between the two halves of an emoji.
        const from = (n) => received.filter((r) => r.customer.customerNumber.number === n);
        smsc.moParts('254700000011', '21356', ['Part one of a long ', 'message from a customer ', 'who writes a lot.']);
        const inParts = await until(10000, 'the long receivedSms', () => from('+254700000011')[0]);
        assert.strictEqual(inParts.n.text, 'Part one of a long message from a customer who writes a lot.');
        const emoji = 'Habari 😀 rafiki';
        const cut = emoji.indexOf('😀') + 1;
        smsc.moParts('254700000012', '21356', [emoji.slice(0, cut), emoji.slice(cut)], 8, 9);
        const split = await until(10000, 'the UCS-2 receivedSms', () => from('+254700000012')[0]);
        assert.strictEqual(split.n.text, emoji);
        await sleep(300);
        assert.strictEqual(from('+254700000011').length, 1, 'a long message arrived in pieces');

        // Throttling: three refusals slow Hodi down; the message is still sent, once.
        smsc.throttle = 3;
        const throttledId = await send('after the throttle');
        await arrival('after the throttle');
        assert.strictEqual(count((e) => e.event === 'throttled'), 3);
        await until(10000, 'SENT after throttling', () => has(throttledId, 'sent'));
        assert.ok(!has(throttledId, 'failed'), 'throttling is not a failure');

        // The SMSC goes away: messages wait, and go once it is back.
        const bindsBefore = count((e) => e.event === 'bound');
        await smsc.stop();
        await sleep(300);
        const waitingId = await send('while the SMSC was away');
        await sleep(1500);
        assert.ok(!smsc.events.some((e) => e.text === 'while the SMSC was away'), 'sent with no SMSC?');
        await smsc.listen();
        await until(20000, 'Hodi binding again', () => count((e) => e.event === 'bound') > bindsBefore);
        await arrival('while the SMSC was away');
        await until(10000, 'SENT after the SMSC came back', () => has(waitingId, 'sent'));

        await sleep(500);
        const messages = smsc.events.filter((e) => e.event === 'message').map((e) => e.text);
        assert.strictEqual(new Set(messages).size, messages.length, `something arrived twice: ${JSON.stringify(messages)}`);
        console.log(JSON.stringify({ ok: true, messages: messages.length, submits: count((e) => e.event === 'submit_sm') }));
        app.disconnect();
        await smsc.stop();
    },

    // Email through an SMTP server with STARTTLS and AUTH: the app's email arrives with its
    // headers, alternatives, cc and bcc; a 550 from the server is FAILED.
    async smtp() {
        const { SMTPServer } = require('smtp-server');
        const mails = [];
        // Hodi's own certificate (it trusts it through the provider's ca_file).
        const fs = require('fs');
        const tlsDir = `${env('HODI_DATA_DIR')}/tls`;
        const server = new SMTPServer({
            key: fs.readFileSync(`${tlsDir}/key.pem`),
            cert: fs.readFileSync(`${tlsDir}/cert.pem`),
            authMethods: ['PLAIN', 'LOGIN'],
            onAuth(auth, session, cb) {
                if (auth.username === 'hodi' && auth.password === 'mail-secret') return cb(null, { user: 'hodi' });
                return cb(new Error('bad credentials'));
            },
            onRcptTo(address, session, cb) {
                if (address.address.endsWith('@rejected.example')) {
                    const err = new Error('no such mailbox');
                    err.responseCode = 550;
                    return cb(err);
                }
                return cb();
            },
            onData(stream, session, cb) {
                const chunks = [];
                stream.on('data', (c) => chunks.push(c));
                stream.on('end', () => {
                    mails.push({
                        from: session.envelope.mailFrom.address,
                        to: session.envelope.rcptTo.map((r) => r.address),
                        secure: session.secure,
                        user: session.user,
                        raw: Buffer.concat(chunks).toString('utf8'),
                    });
                    cb();
                });
            },
            logger: false,
        });
        await new Promise((resolve) => server.listen(Number(env('SMTP_PORT')), '127.0.0.1', resolve));

        const statuses = [];
        const app = await connectApp((c) => {
            c.on('messageStatus', (n, customer, appData, cb) => { statuses.push(n); cb(null, appData); });
        });
        const has = (id, status) => statuses.some((s) => s.messageId === id && s.status === status);
        const email = { number: 'hodi@localhost', channel: 'email' };
        const jane = new app.Customer({ number: 'jane@example.com', provider: 'email' });
        const sent = await jane.sendMessage(email, {
            body: { email: { subject: 'Your statement', bodyPlain: 'You owe KES 5', bodyHtml: '<p>You owe <b>KES 5</b></p>', ccList: ['boss@example.com'], bccList: ['audit@example.com'] } },
        });
        assert.strictEqual(sent.status, 'queued', sent.description);
        const mail = await until(15000, 'the email at the SMTP server', () => mails[0]);
        assert.strictEqual(mail.from, 'hodi@localhost');
        assert.deepStrictEqual([...mail.to].sort(), ['audit@example.com', 'boss@example.com', 'jane@example.com']);
        assert.strictEqual(mail.secure, true, 'STARTTLS was used');
        assert.strictEqual(mail.user, 'hodi', 'AUTH was used');
        assert.match(mail.raw, /^Subject: Your statement\r$/m);
        assert.match(mail.raw, /^To: jane@example.com\r$/m);
        assert.match(mail.raw, /^Cc: boss@example.com\r$/m);
        assert.ok(!/audit@example.com/.test(mail.raw), 'bcc must not be a header');
        assert.match(mail.raw, new RegExp(`^Message-ID: <${sent.messageId}@localhost>\\r$`, 'm'));
        assert.match(mail.raw, /multipart\/alternative/);
        assert.match(mail.raw, /You owe KES 5/);
        await until(10000, 'SENT', () => has(sent.messageId, 'sent'));

        const nobody = new app.Customer({ number: 'nobody@rejected.example', provider: 'email' });
        const refused = await nobody.sendMessage(email, { body: { email: { subject: 'x', bodyPlain: 'y', bodyHtml: '', ccList: [], bccList: [] } } });
        assert.strictEqual(refused.status, 'queued');
        await until(15000, 'FAILED for a 550', () => has(refused.messageId, 'failed'));
        assert.strictEqual(mails.length, 1);
        console.log(JSON.stringify({ ok: true, mails: mails.length }));
        app.disconnect();
        server.close();
    },

    // Africa's Talking over its HTTP API, against a local server that keeps its documented contract
    // (at_api.js), with its callbacks posted to Hodi's webhooks as the gateway would.
    async africastalking() {
        const { startAtApi } = require('./at_api');
        const api = await startAtApi({ port: Number(env('AT_PORT')), username: 'sandbox', apiKey: 'at-secret' });
        const hooks = `http://127.0.0.1:${env('WEBHOOKS_PORT')}/hooks/at/${env('WEBHOOK_TOKEN')}`;
        const post = async (path, fields, base = hooks) => {
            const r = await fetch(`${base}/${path}`, {
                method: 'POST',
                headers: { 'content-type': 'application/x-www-form-urlencoded' },
                body: new URLSearchParams(fields).toString(),
            });
            return { status: r.status, text: await r.text() };
        };
        const statuses = [];
        const received = [];
        const app = await connectApp((c) => {
            c.on('messageStatus', (n, customer, appData, cb) => { statuses.push(n); cb(null, appData); });
            c.on('receivedSms', (n, customer, appData, cb) => { received.push({ n, customer }); cb(null, appData); });
            c.on('ussdSession', (n, customer, appData, cb) => {
                const step = (appData && appData.step) || 0;
                if (step === 0) cb({ text: 'Welcome\n1. Balance', isTerminal: false }, { step: 1 });
                else cb({ text: `Balance for ${n.input.text}: KES 100`, isTerminal: true }, { step: 0 });
            });
        });
        const has = (id, status) => statuses.some((s) => s.messageId === id && s.status === status);
        const sms = { number: '21356', channel: 'sms' };
        const send = async (number, text) => {
            const r = await new app.Customer({ number, provider: 'cellular' }).sendMessage(sms, { body: { text } });
            assert.strictEqual(r.status, 'queued', r.description);
            return r.messageId;
        };

        // Out: the documented request, and SENT with the gateway's message id.
        const id = await send('+254700000001', 'Habari from Hodi');
        const request = await until(10000, 'the messaging request', () => api.requests.find((r) => r.form.message === 'Habari from Hodi'));
        assert.strictEqual(request.method, 'POST');
        assert.strictEqual(request.path, '/version1/messaging');
        assert.strictEqual(request.headers.apikey, 'at-secret');
        assert.strictEqual(request.headers.accept, 'application/json');
        assert.match(request.headers['content-type'], /^application\/x-www-form-urlencoded/);
        assert.deepStrictEqual(request.form, { username: 'sandbox', to: '+254700000001', message: 'Habari from Hodi', from: '21356' });
        await until(10000, 'SENT', () => has(id, 'sent'));
        const atId = request.answer.SMSMessageData.Recipients[0].messageId;

        // Callbacks: a bad token or a malformed body stores nothing; the real report delivers.
        assert.strictEqual((await post('delivery', { id: atId, status: 'Success' }, `http://127.0.0.1:${env('WEBHOOKS_PORT')}/hooks/at/wrong-token`)).status, 403);
        assert.strictEqual((await post('delivery', { status: 'Success' })).status, 400);
        await sleep(300);
        assert.ok(!has(id, 'delivered'), 'a refused callback delivered the message');
        assert.strictEqual((await post('delivery', { id: atId, status: 'Buffered', phoneNumber: '+254700000001' })).status, 200);
        assert.strictEqual((await post('delivery', { id: atId, status: 'Success', phoneNumber: '+254700000001', networkCode: '63902' })).status, 200);
        await until(10000, 'DELIVERED', () => has(id, 'delivered'));

        // A number the gateway refuses fails; a gateway error is tried again.
        const refused = await send('+254700000403', 'to a bad number');
        await until(10000, 'FAILED for InvalidPhoneNumber', () => has(refused, 'failed'));
        const retried = await send('+254700000500', 'after a gateway error');
        await until(15000, 'SENT after a retry', () => has(retried, 'sent'));
        assert.strictEqual(api.requests.filter((r) => r.form.to === '+254700000500').length, 2);

        // In: an incoming message becomes receivedSms.
        const inbound = await post('sms', { from: '+254700000009', to: '21356', text: 'Nataka kulipa', id: 'ATXid_in_1', date: '2026-12-06 14:00:00', linkId: 'l1' });
        assert.strictEqual(inbound.status, 200, inbound.text);
        const mo = await until(10000, 'receivedSms', () => received[0]);
        assert.strictEqual(mo.n.text, 'Nataka kulipa');
        assert.strictEqual(mo.customer.customerNumber.number, '+254700000009');
        // The gateway sending the same message again (it does, after a timeout) is answered, once.
        const again = await post('sms', { from: '+254700000009', to: '21356', text: 'Nataka kulipa', id: 'ATXid_in_1', date: '2026-12-06 14:00:00', linkId: 'l1' });
        assert.strictEqual(again.status, 200, again.text);
        await sleep(500);
        assert.strictEqual(received.length, 1, 'a message sent again reached the app twice');

        // USSD: each step is answered from the app's menu, CON then END.
        const first = await post('ussd', { sessionId: 'ATUid_1', serviceCode: '*384#', phoneNumber: '+254700000009', networkCode: '63902', text: '' });
        assert.strictEqual(first.status, 200);
        assert.strictEqual(first.text, 'CON Welcome\n1. Balance');
        const second = await post('ussd', { sessionId: 'ATUid_1', serviceCode: '*384#', phoneNumber: '+254700000009', networkCode: '63902', text: '1' });
        assert.strictEqual(second.text, 'END Balance for 1: KES 100');
        console.log(JSON.stringify({ ok: true, requests: api.requests.length }));
        app.disconnect();
        api.close();
    },

    // M-Pesa through Daraja (daraja_api.js keeps its documented contract) and Africa's Talking
    // airtime (at_api.js): checkouts are STK pushes, payouts B2C payments or airtime, and the
    // ledger moves only when the provider's result callback confirms.
    async mpesa() {
        const { startDarajaApi, daraja } = require('./daraja_api');
        const { startAtApi } = require('./at_api');
        const api = await startDarajaApi({
            port: Number(env('MPESA_PORT')), consumerKey: 'daraja-key', consumerSecret: 'daraja-secret',
            passkey: 'daraja-passkey', initiator: 'testapi', credential: 'daraja-credential',
        });
        const at = await startAtApi({ port: Number(env('AT_PORT')), username: 'sandbox', apiKey: 'at-secret' });
        const hooksPort = env('WEBHOOKS_PORT');
        const token = env('WEBHOOK_TOKEN');
        const hooks = `http://127.0.0.1:${hooksPort}/hooks/mpesa/${token}`;
        const postJson = async (url, body) => {
            const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
            const text = await r.text();
            let parsed = null;
            try { parsed = JSON.parse(text); } catch (e) { /* not JSON */ }
            return { status: r.status, body: parsed, text };
        };
        const purseId = env('HODI_PURSE');
        const statuses = [];
        const received = [];
        const app = await connectApp((c) => {
            c.on('paymentStatus', (n, customer, appData, cb) => { statuses.push(n); cb(null, appData); });
            c.on('receivedPayment', (n, customer, appData, cb) => { received.push(n); cb(null, appData); });
        });
        const statusOf = (id) => statuses.filter((s) => s.transactionId === id).map((s) => s.status);
        const kes = (amount) => ({ amount, currencyCode: 'KES' });
        const paybill = { number: '174379', channel: 'cellular' };
        const jane = '+254708374149';
        const mobile = (number) => ({ customerNumber: { number, provider: 'cellular' }, channelNumber: paybill });
        const customer = new app.Customer({ number: jane, provider: 'cellular' });
        const janeId = (await customer.getState()).customerId;
        const savings = { customerId: janeId, walletId: 'savings' };
        const wallet = async () => {
            const state = await customer.getState();
            const w = state.paymentState && new Map(state.paymentState.wallets).get('savings');
            return w ? { actual: w.actual.amount, available: w.available.amount } : { actual: 0, available: 0 };
        };

        // C2B: validation accepts our short code and refuses one nobody bound; a confirmation lands
        // in the purse once, however often Daraja sends it.
        let r = await postJson(`${hooks}/c2b-validation`, daraja.c2b('RKTQDM7W60', '174379', '254708374149', '1000.00'));
        assert.deepStrictEqual([r.status, r.body.ResultCode], [200, '0']);
        r = await postJson(`${hooks}/c2b-validation`, daraja.c2b('RKTQDM7W61', '999999', '254708374149', '10.00'));
        assert.deepStrictEqual([r.status, r.body.ResultCode], [200, 'C2B00016']);
        for (let i = 0; i < 2; i += 1) {
            r = await postJson(`${hooks}/c2b-confirmation`, daraja.c2b('RKTQDM7W60', '174379', '254708374149', '1000.00'));
            assert.deepStrictEqual([r.status, r.body.ResultCode], [200, '0'], r.text);
        }
        await until(10000, 'receivedPayment', () => received[0]);
        await sleep(300);
        assert.strictEqual(received.length, 1, 'a confirmation sent twice was received twice');
        assert.strictEqual(received[0].purseId, purseId);
        assert.strictEqual(received[0].value.amount, 1000);

        // A checkout is an STK push; nothing moves until Daraja's result says the customer paid.
        const pay = await app.initiatePayment(mobile(jane), savings, kes(100), 'Order 42');
        assert.strictEqual(pay.status, 'pending_confirmation', pay.description);
        assert.match(pay.description, /provider mpesa/);
        const oauth = await until(10000, 'the OAuth request', () => api.requests.find((q) => q.path.startsWith('/oauth/')));
        assert.strictEqual(oauth.method, 'GET');
        assert.strictEqual(oauth.headers.authorization, `Basic ${Buffer.from('daraja-key:daraja-secret').toString('base64')}`);
        const stk = await until(10000, 'the STK push', () => api.requests.find((q) => q.path === '/mpesa/stkpush/v1/processrequest'));
        assert.deepStrictEqual(stk.problems, []);
        assert.strictEqual(stk.headers.authorization, `Bearer ${oauth.answer.access_token}`);
        assert.strictEqual(stk.headers['content-type'], 'application/json');
        assert.strictEqual(stk.body.BusinessShortCode, '174379');
        assert.strictEqual(stk.body.Amount, 100);
        assert.strictEqual(stk.body.PartyA, '254708374149');
        assert.strictEqual(stk.body.TransactionType, 'CustomerPayBillOnline');
        assert.strictEqual(stk.body.TransactionDesc, 'Order 42');
        assert.strictEqual(stk.body.CallBackURL, `${hooks}/stk`);
        await sleep(300);
        assert.deepStrictEqual(await wallet(), { actual: 0, available: 0 }, 'money moved before the customer paid');
        const paid = daraja.stkResult(stk.answer.CheckoutRequestID, 0, 100, '254708374149');
        for (let i = 0; i < 2; i += 1) {
            r = await postJson(stk.body.CallBackURL, paid);
            assert.deepStrictEqual([r.status, r.body.ResultCode], [200, '0'], r.text);
        }
        await until(10000, 'SUCCESS for the checkout', () => statusOf(pay.transactionId).includes('success'));
        assert.deepStrictEqual(await wallet(), { actual: 100, available: 100 });
        await sleep(300);
        assert.strictEqual(statusOf(pay.transactionId).length, 1, 'a result sent twice was applied twice');

        // The customer cancels the prompt: REJECTED, nothing moves.
        const no = await app.initiatePayment(mobile(jane), savings, kes(70));
        const stk2 = await until(10000, 'the second STK push', () => api.requests.filter((q) => q.path === '/mpesa/stkpush/v1/processrequest')[1]);
        r = await postJson(`${hooks}/stk`, daraja.stkResult(stk2.answer.CheckoutRequestID, 1032));
        assert.strictEqual(r.status, 200);
        await until(10000, 'REJECTED', () => statusOf(no.transactionId).includes('rejected'));
        assert.deepStrictEqual(await wallet(), { actual: 100, available: 100 });

        // Daraja calling back the moment it answers the STK push: the result still lands.
        api.instantResult = 0;
        const quick = await app.initiatePayment(mobile(jane), savings, kes(1));
        const quickCallback = await until(10000, 'the instant callback', () => api.callbacks[0]);
        assert.strictEqual(quickCallback.status, 200, 'a result that beat Hodi\'s record of its request was lost');
        await until(10000, 'SUCCESS for the instant result', () => statusOf(quick.transactionId).includes('success'));
        assert.deepStrictEqual(await wallet(), { actual: 101, available: 101 });

        // Refused up front: cents (M-Pesa moves whole shillings); refused by Daraja: a bad number.
        const cents = await app.initiatePayment(mobile(jane), savings, kes(10.5));
        assert.strictEqual(cents.status, 'invalid_request', cents.description);
        const bad = await app.initiatePayment(mobile('+254700000400'), { purseId }, kes(5));
        assert.strictEqual(bad.status, 'pending_confirmation');
        await until(10000, 'FAILED for a number Daraja refuses', () => statusOf(bad.transactionId).includes('failed'));

        // A payout is a B2C payment: held at once, taken only on the result; a failed one is released.
        const out = await app.initiatePayment(savings, mobile(jane), kes(40), 'Refund');
        assert.strictEqual(out.status, 'queued', out.description);
        const b2c = await until(10000, 'the B2C request', () => api.requests.find((q) => q.path === '/mpesa/b2c/v3/paymentrequest'));
        assert.deepStrictEqual(b2c.problems, []);
        assert.strictEqual(b2c.body.OriginatorConversationID, out.transactionId);
        assert.strictEqual(b2c.body.Amount, 40);
        assert.strictEqual(b2c.body.PartyA, '174379');
        assert.strictEqual(b2c.body.PartyB, '254708374149');
        assert.strictEqual(b2c.body.ResultURL, `${hooks}/b2c-result`);
        assert.strictEqual(b2c.body.QueueTimeOutURL, `${hooks}/b2c-timeout`);
        assert.deepStrictEqual(await wallet(), { actual: 101, available: 61 }, 'the payout is held, not taken');
        r = await postJson(b2c.body.ResultURL, daraja.b2cResult(b2c, b2c.answer, 0));
        assert.deepStrictEqual([r.status, r.body.ResultCode], [200, '0'], r.text);
        await until(10000, 'SUCCESS for the payout', () => statusOf(out.transactionId).includes('success'));
        assert.deepStrictEqual(await wallet(), { actual: 61, available: 61 });
        const fails = await app.initiatePayment(savings, mobile(jane), kes(30));
        const b2c2 = await until(10000, 'the second B2C request', () => api.requests.filter((q) => q.path === '/mpesa/b2c/v3/paymentrequest')[1]);
        assert.deepStrictEqual(await wallet(), { actual: 61, available: 31 });
        r = await postJson(`${hooks}/b2c-result`, daraja.b2cResult(b2c2, b2c2.answer, 2001));
        await until(10000, 'FAILED for the payout', () => statusOf(fails.transactionId).includes('failed'));
        assert.deepStrictEqual(await wallet(), { actual: 61, available: 61 }, 'a failed payout is released');
        // Daraja down for a moment: the request is made again, and paid once.
        const retried = await app.initiatePayment({ purseId }, mobile('+254700000503'), kes(20));
        assert.strictEqual(retried.status, 'queued', retried.description);
        await until(15000, 'the B2C request after a 503', () => api.requests.some((q) => q.body && q.body.PartyB === '254700000503' && q.answer.ResponseCode === '0'));
        assert.strictEqual(api.requests.filter((q) => q.body && q.body.PartyB === '254700000503').length, 2);

        // A result that never comes (Daraja sends none twice): the operator finds the payout
        // still pending and settles it by hand from M-Pesa's records.
        const { execFileSync } = require('child_process');
        const cli = (...args) => execFileSync(env('HODI_BIN'), args, { env: process.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        const stuck = await app.initiatePayment(savings, mobile(jane), kes(7));
        await until(10000, 'the stuck payout listed with its reference', () => new RegExp(`${stuck.transactionId}.*provider mpesa ref AG_`).test(cli('payment', 'pending')));
        assert.deepStrictEqual(await wallet(), { actual: 61, available: 54 });
        assert.match(cli('payment', 'settle', '--transaction', stuck.transactionId, '--status', 'failed'), /is now failed/);
        await until(15000, 'FAILED for the stuck payout', () => statusOf(stuck.transactionId).includes('failed'));
        assert.deepStrictEqual(await wallet(), { actual: 61, available: 61 }, 'a payout failed by hand is released');
        assert.throws(() => cli('payment', 'settle', '--transaction', stuck.transactionId, '--status', 'success'), /no longer pending/);
        assert.ok(!cli('payment', 'pending').includes(stuck.transactionId));

        // The door: a wrong token, a malformed body, a reference we never made.
        r = await postJson(`http://127.0.0.1:${hooksPort}/hooks/mpesa/wrong-token/stk`, paid);
        assert.strictEqual(r.status, 403);
        r = await postJson(`${hooks}/stk`, '{"Body": {');
        assert.strictEqual(r.status, 400);
        r = await postJson(`${hooks}/stk`, { Body: { stkCallback: { ResultCode: 0 } } });
        assert.strictEqual(r.status, 400);
        r = await postJson(`${hooks}/stk`, daraja.stkResult('ws_CO_never', 0, 1, '254708374149'));
        assert.strictEqual(r.status, 404);

        // Airtime through Africa's Talking: a payout on an airtime number, settled by its status callback.
        const airtimeNumber = { number: 'hodi-airtime', channel: 'airtime' };
        const topUp = await app.initiatePayment({ purseId }, { customerNumber: { number: '+254711000777', provider: 'cellular' }, channelNumber: airtimeNumber }, kes(50));
        assert.strictEqual(topUp.status, 'queued', topUp.description);
        const sent = await until(10000, 'the airtime request', () => at.requests.find((q) => q.path === '/version1/airtime/send'));
        assert.strictEqual(sent.headers.apikey, 'at-secret');
        assert.strictEqual(sent.headers['idempotency-key'], topUp.transactionId);
        assert.strictEqual(sent.form.username, 'sandbox');
        assert.deepStrictEqual(sent.recipients, [{ phoneNumber: '+254711000777', currencyCode: 'KES', amount: '50.00' }]);
        const atHooks = `http://127.0.0.1:${hooksPort}/hooks/at/${token}`;
        const form = (fields) => fetch(`${atHooks}/airtime`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });
        assert.strictEqual((await form({ status: 'Success' })).status, 400);
        const requestId = sent.answer.responses[0].requestId;
        const delivered = await form({ phoneNumber: '+254711000777', description: 'Airtime Delivered Successfully', status: 'Success', requestId, discount: 'KES 0.6000', value: 'KES 50.0000' });
        assert.strictEqual(delivered.status, 200);
        await until(10000, 'SUCCESS for the airtime', () => statusOf(topUp.transactionId).includes('success'));
        const collect = await app.initiatePayment({ customerNumber: { number: '+254711000777', provider: 'cellular' }, channelNumber: airtimeNumber }, { purseId }, kes(5));
        assert.strictEqual(collect.status, 'not_supported', collect.description);

        console.log(JSON.stringify({ ok: true, daraja: api.requests.length, airtime: at.requests.length }));
        app.disconnect();
        api.close();
        at.close();
    },

    // Twilio's Messages API for SMS and WhatsApp, against a local server that keeps its documented
    // contract (twilio_api.js), with status callbacks and incoming messages signed as Twilio signs.
    async twilio() {
        const { startTwilioApi } = require('./twilio_api');
        const accountSid = 'AC00000000000000000000000000000001';
        const api = await startTwilioApi({ port: Number(env('TW_PORT')), accountSid, authToken: 'twilio-auth-token' });
        const hooks = `http://127.0.0.1:${env('WEBHOOKS_PORT')}/hooks/tw/${env('WEBHOOK_TOKEN')}`;
        const post = async (url, fields, signature) => {
            const headers = { 'content-type': 'application/x-www-form-urlencoded' };
            if (signature !== undefined) headers['x-twilio-signature'] = signature;
            const r = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(fields).toString() });
            return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
        };
        const statuses = [];
        const received = [];
        const app = await connectApp((c) => {
            c.on('messageStatus', (n, customer, appData, cb) => { statuses.push(n); cb(null, appData); });
            c.on('receivedWhatsapp', (n, customer, appData, cb) => { received.push({ n, customer }); cb(null, appData); });
        });
        const has = (id, status) => statuses.some((s) => s.messageId === id && s.status === status);
        const send = async (number, channel, text) => {
            const r = await new app.Customer({ number, provider: 'cellular' }).sendMessage(channel, { body: { text } });
            assert.strictEqual(r.status, 'queued', r.description);
            return r.messageId;
        };
        const sms = { number: '+14155550100', channel: 'sms' };
        const whatsapp = { number: '+254711082001', channel: 'whatsapp' };

        // Out: the documented request, for SMS and for WhatsApp.
        const smsId = await send('+254700000001', sms, 'Your code is 1234');
        const waId = await send('+254700000002', whatsapp, 'Karibu on WhatsApp');
        const smsReq = await until(10000, 'the SMS request', () => api.requests.find((r) => r.form.Body === 'Your code is 1234'));
        const waReq = await until(10000, 'the WhatsApp request', () => api.requests.find((r) => r.form.Body === 'Karibu on WhatsApp'));
        assert.strictEqual(smsReq.path, `/2010-04-01/Accounts/${accountSid}/Messages.json`);
        assert.strictEqual(smsReq.headers.authorization, `Basic ${Buffer.from(`${accountSid}:twilio-auth-token`).toString('base64')}`);
        assert.deepStrictEqual(smsReq.form, { To: '+254700000001', From: '+14155550100', Body: 'Your code is 1234', StatusCallback: `${hooks}/status` });
        assert.strictEqual(waReq.form.To, 'whatsapp:+254700000002');
        assert.strictEqual(waReq.form.From, 'whatsapp:+254711082001');
        await until(10000, 'SENT for both', () => has(smsId, 'sent') && has(waId, 'sent'));

        // Beyond text on WhatsApp: media by URL, and a Content template (its SID and variables).
        // The SDK reads a template parameter's value from the template object itself, not from
        // `params` (its bug), so an app sets both.
        const sendBody = async (number, channel, body) => {
            const r = await new app.Customer({ number, provider: 'cellular' }).sendMessage(channel, { body });
            assert.strictEqual(r.status, 'queued', r.description);
            return r.messageId;
        };
        const mediaId = await sendBody('+254700000002', whatsapp, { media: { url: 'https://hodi.example/receipt.png', type: 'image' } });
        const mediaReq = await until(10000, 'the media request', () => api.requests.find((r) => r.form.MediaUrl));
        assert.deepStrictEqual(mediaReq.form, { To: 'whatsapp:+254700000002', From: 'whatsapp:+254711082001', MediaUrl: 'https://hodi.example/receipt.png', StatusCallback: `${hooks}/status` });
        const tplId = await sendBody('+254700000002', whatsapp, { template: { id: 'HXb5b62575e6e4ff6129ad7c8efe1f983e', params: { 1: '', 2: '' }, 1: 'Ada', 2: 'KES 5' } });
        const tplReq = await until(10000, 'the template request', () => api.requests.find((r) => r.form.ContentSid));
        assert.strictEqual(tplReq.form.ContentSid, 'HXb5b62575e6e4ff6129ad7c8efe1f983e');
        assert.deepStrictEqual(JSON.parse(tplReq.form.ContentVariables), { 1: 'Ada', 2: 'KES 5' });
        assert.strictEqual(tplReq.form.Body, undefined);
        await until(10000, 'SENT for media and template', () => has(mediaId, 'sent') && has(tplId, 'sent'));

        // Status callbacks: unsigned or wrongly signed is 403 and changes nothing; signed delivers.
        const status = { MessageSid: smsReq.answer.sid, MessageStatus: 'delivered', AccountSid: accountSid, To: '+254700000001', From: '+14155550100' };
        assert.strictEqual((await post(`${hooks}/status`, status)).status, 403);
        assert.strictEqual((await post(`${hooks}/status`, status, api.sign(`${hooks}/status`, { ...status, MessageStatus: 'failed' }))).status, 403);
        await sleep(300);
        assert.ok(!has(smsId, 'delivered') && !has(smsId, 'failed'), 'a forged callback changed the message');
        assert.strictEqual((await post(`${hooks}/status`, status, api.sign(`${hooks}/status`, status))).status, 200);
        await until(10000, 'DELIVERED', () => has(smsId, 'delivered'));
        const read = { ...status, MessageSid: waReq.answer.sid, MessageStatus: 'read' };
        assert.strictEqual((await post(`${hooks}/status`, read, api.sign(`${hooks}/status`, read))).status, 200);
        await until(10000, 'READ on WhatsApp', () => has(waId, 'read'));

        // Twilio refuses a number: FAILED with its error.
        const refused = await send('+254700000400', sms, 'to a bad number');
        await until(10000, 'FAILED for error 21211', () => has(refused, 'failed'));

        // In: a signed WhatsApp message becomes receivedWhatsapp, answered with empty TwiML.
        const incoming = { MessageSid: 'SM_in_1', AccountSid: accountSid, From: 'whatsapp:+254700000009', To: 'whatsapp:+254711082001', Body: 'Habari', NumMedia: '0' };
        const answer = await post(`${hooks}/message`, incoming, api.sign(`${hooks}/message`, incoming));
        assert.strictEqual(answer.status, 200, answer.text);
        assert.match(answer.type, /xml/);
        assert.match(answer.text, /<Response><\/Response>/);
        const wa = await until(10000, 'receivedWhatsapp', () => received[0]);
        assert.strictEqual(wa.n.text, 'Habari');
        assert.strictEqual(wa.customer.customerNumber.number, '+254700000009');
        console.log(JSON.stringify({ ok: true, requests: api.requests.length }));
        app.disconnect();
        api.close();
    },

    // A Telegram bot through the Bot API, against a local server keeping its sendMessage contract
    // (telegram_api.js), with updates posted to the webhook as Telegram posts them.
    async telegram() {
        const { startTelegramApi } = require('./telegram_api');
        const api = await startTelegramApi({ port: Number(env('TG_PORT')), botToken: '123456:test-bot-token' });
        const token = env('WEBHOOK_TOKEN');
        const update = async (body, secret = token) => {
            const headers = { 'content-type': 'application/json' };
            if (secret) headers['x-telegram-bot-api-secret-token'] = secret;
            const r = await fetch(`http://127.0.0.1:${env('WEBHOOKS_PORT')}/hooks/tg/${token}/update`, { method: 'POST', headers, body });
            return r.status;
        };
        const statuses = [];
        const received = [];
        const app = await connectApp((c) => {
            c.on('messageStatus', (n, customer, appData, cb) => { statuses.push(n); cb(null, appData); });
            c.on('receivedTelegram', (n, customer, appData, cb) => { received.push({ n, customer }); cb(null, appData); });
        });
        const has = (id, status) => statuses.some((s) => s.messageId === id && s.status === status);
        const bot = { number: 'hodi_bot', channel: 'telegram' };
        const send = async (chat, text) => {
            const r = await new app.Customer({ number: chat, provider: 'telegram' }).sendMessage(bot, { body: { text } });
            assert.strictEqual(r.status, 'queued', r.description);
            return r.messageId;
        };
        const id = await send('777', 'Karibu from the bot');
        const request = await until(10000, 'sendMessage', () => api.requests.find((r) => r.json && r.json.text === 'Karibu from the bot'));
        assert.strictEqual(request.method, 'POST');
        assert.strictEqual(request.path, '/bot123456:test-bot-token/sendMessage');
        assert.match(request.headers['content-type'], /^application\/json/);
        assert.deepStrictEqual(request.json, { chat_id: '777', text: 'Karibu from the bot' });
        await until(10000, 'SENT', () => has(id, 'sent'));
        const blocked = await send('403', 'to a chat that blocked the bot');
        await until(10000, 'FAILED for a blocked bot', () => has(blocked, 'failed'));
        const photo = await new app.Customer({ number: '777', provider: 'telegram' }).sendMessage(bot, { body: { media: { url: 'https://hodi.example/a.png', type: 'image' } } });
        const photoReq = await until(10000, 'sendPhoto', () => api.requests.find((r) => r.path.endsWith('/sendPhoto')));
        assert.deepStrictEqual(photoReq.json, { chat_id: '777', photo: 'https://hodi.example/a.png' });
        const place = await new app.Customer({ number: '777', provider: 'telegram' }).sendMessage(bot, { body: { location: { latitude: -1.2921, longitude: 36.8219, label: 'Office', address: 'Nairobi' } } });
        const placeReq = await until(10000, 'sendLocation', () => api.requests.find((r) => r.path.endsWith('/sendLocation')));
        assert.deepStrictEqual(placeReq.json, { chat_id: '777', latitude: -1.2921, longitude: 36.8219 });
        await until(10000, 'SENT for the photo and the location', () => has(photo.messageId, 'sent') && has(place.messageId, 'sent'));

        const message = JSON.stringify({ update_id: 10, message: { message_id: 1003, from: { id: 777, is_bot: false, first_name: 'Ada' }, chat: { id: 777, type: 'private' }, date: 1, text: 'Habari bot' } });
        assert.strictEqual(await update(message, null), 403);
        assert.strictEqual(await update(message, 'not-the-token'), 403);
        assert.strictEqual(await update('{"update_id": 11, "message": '), 400);
        await sleep(300);
        assert.strictEqual(received.length, 0, 'a refused update reached the app');
        assert.strictEqual(await update(message), 200);
        const got = await until(10000, 'receivedTelegram', () => received[0]);
        assert.strictEqual(got.n.text, 'Habari bot');
        assert.strictEqual(got.customer.customerNumber.number, '777');

        // Long polling: the second bot (updates = "polling") removes its webhook and fetches its
        // updates with getUpdates; an update is confirmed (the offset moves past it) only once it
        // is stored, and reaches the app once.
        await until(20000, 'Hodi polling getUpdates', () => api.polls.length > 0);
        assert.ok(api.requests.some((r) => r.path === '/bot123456:test-bot-token/deleteWebhook'));
        const poll = api.polls[api.polls.length - 1];
        assert.deepStrictEqual([poll.timeout, poll.limit, poll.allowed_updates], [25, 50, ['message']]);
        api.push({ update_id: 500, message: { message_id: 9, from: { id: 888, is_bot: false, first_name: 'Baraka' }, chat: { id: 888, type: 'private' }, date: 1, text: 'Polled hello' } });
        const polled = await until(10000, 'receivedTelegram by polling', () => received.find((r) => r.n.text === 'Polled hello'));
        assert.strictEqual(polled.customer.customerNumber.number, '888');
        await until(10000, 'the confirming offset', () => api.polls.some((p) => p.offset === 501));
        api.push({ update_id: 501, message: { message_id: 10, from: { id: 888, is_bot: false, first_name: 'Baraka' }, chat: { id: 888, type: 'private' }, date: 2, text: 'And again' } });
        await until(10000, 'the second polled message', () => received.find((r) => r.n.text === 'And again'));
        await sleep(300);
        assert.strictEqual(received.filter((r) => r.n.text === 'Polled hello').length, 1, 'a polled update reached the app twice');
        console.log(JSON.stringify({ ok: true, requests: api.requests.length }));
        app.disconnect();
        api.close();
    },

    // WhatsApp Cloud API and Messenger through Meta's Graph API, against a local server keeping
    // its send contract (graph_api.js), with webhooks signed as Meta signs them.
    async meta() {
        const { startGraphApi } = require('./graph_api');
        const api = await startGraphApi({ port: Number(env('META_PORT')), version: 'v19.0', phoneNumberId: '123456', accessToken: 'meta-access-token', appSecret: 'meta-app-secret' });
        const hooks = `http://127.0.0.1:${env('WEBHOOKS_PORT')}/hooks/meta/${env('WEBHOOK_TOKEN')}/events`;
        const deliver = async (payload, signature = api.sign(payload)) => {
            const headers = { 'content-type': 'application/json' };
            if (signature) headers['x-hub-signature-256'] = signature;
            return (await fetch(hooks, { method: 'POST', headers, body: payload })).status;
        };

        // The subscription check.
        const check = await fetch(`${hooks}?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444`);
        assert.strictEqual(check.status, 200);
        assert.strictEqual(await check.text(), '1158201444');
        assert.strictEqual((await fetch(`${hooks}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1`)).status, 403);

        const statuses = [];
        const received = [];
        const app = await connectApp((c) => {
            c.on('messageStatus', (n, customer, appData, cb) => { statuses.push(n); cb(null, appData); });
            c.on('receivedWhatsapp', (n, customer, appData, cb) => { received.push(n); cb(null, appData); });
            c.on('receivedFbMessenger', (n, customer, appData, cb) => { received.push(n); cb(null, appData); });
        });
        const has = (id, status) => statuses.some((s) => s.messageId === id && s.status === status);
        const send = async (who, channel, text) => {
            const r = await new app.Customer(who).sendMessage(channel, { body: { text } });
            assert.strictEqual(r.status, 'queued', r.description);
            return r.messageId;
        };
        const whatsapp = { number: '+254711082001', channel: 'whatsapp' };
        const page = { number: 'hodi_page', channel: 'fb_messenger' };
        const waId = await send({ number: '+254700000001', provider: 'cellular' }, whatsapp, 'Habari kwa WhatsApp');
        const fbId = await send({ number: 'PSID123', provider: 'facebook' }, page, 'Hello on Messenger');
        const waReq = await until(10000, 'the WhatsApp send', () => api.requests.find((r) => r.json && r.json.text && r.json.text.body === 'Habari kwa WhatsApp'));
        const fbReq = await until(10000, 'the Messenger send', () => api.requests.find((r) => r.json && r.json.message && r.json.message.text === 'Hello on Messenger'));
        assert.strictEqual(waReq.path, '/v19.0/123456/messages');
        assert.strictEqual(waReq.headers.authorization, 'Bearer meta-access-token');
        assert.deepStrictEqual(waReq.json, { messaging_product: 'whatsapp', recipient_type: 'individual', to: '254700000001', type: 'text', text: { body: 'Habari kwa WhatsApp' } });
        assert.strictEqual(fbReq.path, '/v19.0/me/messages');
        assert.deepStrictEqual(fbReq.json, { recipient: { id: 'PSID123' }, messaging_type: 'RESPONSE', message: { text: 'Hello on Messenger' } });
        await until(10000, 'SENT on both', () => has(waId, 'sent') && has(fbId, 'sent'));
        const refused = await send({ number: '+254700000400', provider: 'cellular' }, whatsapp, 'not allowed');
        await until(10000, 'FAILED for error 131030', () => has(refused, 'failed'));

        // Beyond text: a template (the SDK reads each parameter's value from the template object
        // itself, not from `params` — its bug — so an app sets both), an image, a location, and a
        // Messenger attachment.
        const sendBody = async (who, channel, body) => {
            const r = await new app.Customer(who).sendMessage(channel, { body });
            assert.strictEqual(r.status, 'queued', r.description);
            return r.messageId;
        };
        const ada = { number: '+254700000001', provider: 'cellular' };
        const tplId = await sendBody(ada, whatsapp, { template: { id: 'balance_update', params: { 1: '', 2: '' }, 1: 'Ada', 2: 'KES 5' } });
        const tplReq = await until(10000, 'the template send', () => api.requests.find((r) => r.json && r.json.type === 'template'));
        assert.deepStrictEqual(tplReq.json.template, { name: 'balance_update', language: { code: 'en_US' }, components: [{ type: 'body', parameters: [{ type: 'text', text: 'Ada' }, { type: 'text', text: 'KES 5' }] }] });
        const imgId = await sendBody(ada, whatsapp, { media: { url: 'https://hodi.example/receipt.png', type: 'image' } });
        const imgReq = await until(10000, 'the image send', () => api.requests.find((r) => r.json && r.json.type === 'image'));
        assert.deepStrictEqual(imgReq.json.image, { link: 'https://hodi.example/receipt.png' });
        const locId = await sendBody(ada, whatsapp, { location: { latitude: -1.2921, longitude: 36.8219, label: 'Office', address: 'Kenyatta Ave' } });
        const locReq = await until(10000, 'the location send', () => api.requests.find((r) => r.json && r.json.type === 'location'));
        assert.deepStrictEqual(locReq.json.location, { latitude: -1.2921, longitude: 36.8219, name: 'Office', address: 'Kenyatta Ave' });
        const fbImg = await sendBody({ number: 'PSID123', provider: 'facebook' }, page, { media: { url: 'https://hodi.example/receipt.png', type: 'image' } });
        const fbImgReq = await until(10000, 'the attachment send', () => api.requests.find((r) => r.json && r.json.message && r.json.message.attachment));
        assert.deepStrictEqual(fbImgReq.json.message.attachment, { type: 'image', payload: { url: 'https://hodi.example/receipt.png', is_reusable: true } });
        await until(10000, 'SENT for template, image, location and attachment', () => [tplId, imgId, locId, fbImg].every((id) => has(id, 'sent')));
        const noTemplates = await sendBody({ number: 'PSID123', provider: 'facebook' }, page, { template: { id: 'x', params: {} } });
        await until(10000, 'FAILED for a template on Messenger', () => has(noTemplates, 'failed'));

        // Receipts for both channels; forged or malformed webhooks change nothing.
        const wamid = waReq.answer.messages[0].id;
        const waStatus = JSON.stringify({ object: 'whatsapp_business_account', entry: [{ id: 'WABA', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '254711082001', phone_number_id: '123456' }, statuses: [{ id: wamid, status: 'delivered', timestamp: '1', recipient_id: '254700000001' }] } }] }] });
        assert.strictEqual(await deliver(waStatus, null), 403);
        assert.strictEqual(await deliver(waStatus, 'sha256=00'), 403);
        assert.strictEqual(await deliver('{"object":'), 400);
        await sleep(300);
        assert.ok(!has(waId, 'delivered'), 'a forged webhook delivered the message');
        assert.strictEqual(await deliver(waStatus), 200);
        const fbDelivery = JSON.stringify({ object: 'page', entry: [{ id: 'PAGE', time: 1, messaging: [{ sender: { id: 'PSID123' }, recipient: { id: 'PAGE' }, delivery: { mids: [fbReq.answer.message_id], watermark: 1 } }] }] });
        assert.strictEqual(await deliver(fbDelivery), 200);
        await until(10000, 'DELIVERED on both', () => has(waId, 'delivered') && has(fbId, 'delivered'));

        // Customers write in on both channels.
        const waIn = JSON.stringify({ object: 'whatsapp_business_account', entry: [{ id: 'WABA', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '254711082001', phone_number_id: '123456' }, contacts: [{ profile: { name: 'Ada' }, wa_id: '254700000009' }], messages: [{ from: '254700000009', id: 'wamid.IN1', timestamp: '1', type: 'text', text: { body: 'Nataka salio' } }] } }] }] });
        const fbIn = JSON.stringify({ object: 'page', entry: [{ id: 'PAGE', time: 1, messaging: [{ sender: { id: 'PSID999' }, recipient: { id: 'PAGE' }, timestamp: 1, message: { mid: 'm_in_1', text: 'Hi page' } }] }] });
        assert.strictEqual(await deliver(waIn), 200);
        assert.strictEqual(await deliver(fbIn), 200);
        await until(10000, 'both messages at the app', () => received.length >= 2);
        assert.deepStrictEqual(received.map((n) => n.text).sort(), ['Hi page', 'Nataka salio']);
        console.log(JSON.stringify({ ok: true, requests: api.requests.length }));
        app.disconnect();
        api.close();
    },

    // Mailgun's sending API, against a local server keeping its contract (mailgun_api.js), with
    // delivery events and an inbound route signed as Mailgun signs them.
    async mailgun() {
        const { startMailgunApi } = require('./mailgun_api');
        const api = await startMailgunApi({ port: Number(env('MG_PORT')), domain: 'mg.example.com', apiKey: 'mg-api-key', signingKey: 'mg-signing-key' });
        const hooks = `http://127.0.0.1:${env('WEBHOOKS_PORT')}/hooks/mg/${env('WEBHOOK_TOKEN')}`;
        const statuses = [];
        const received = [];
        const app = await connectApp((c) => {
            c.on('messageStatus', (n, customer, appData, cb) => { statuses.push(n); cb(null, appData); });
            c.on('receivedEmail', (n, customer, appData, cb) => { received.push({ n, customer }); cb(null, appData); });
        });
        const has = (id, status) => statuses.some((s) => s.messageId === id && s.status === status);
        const news = { number: 'news@mg.example.com', channel: 'email' };
        const send = async (to, email) => {
            const r = await new app.Customer({ number: to, provider: 'email' }).sendMessage(news, { body: { email } });
            assert.strictEqual(r.status, 'queued', r.description);
            return r.messageId;
        };
        const id = await send('jane@example.com', { subject: 'Statement', bodyPlain: 'You owe 5', bodyHtml: '<p>You owe 5</p>', ccList: ['boss@example.com'], bccList: ['audit@example.com'] });
        const request = await until(10000, 'the send', () => api.requests.find((r) => r.form.subject && r.form.subject[0] === 'Statement'));
        assert.strictEqual(request.path, '/v3/mg.example.com/messages');
        assert.strictEqual(request.headers.authorization, `Basic ${Buffer.from('api:mg-api-key').toString('base64')}`);
        assert.deepStrictEqual(request.form, { from: ['news@mg.example.com'], to: ['jane@example.com'], subject: ['Statement'], cc: ['boss@example.com'], bcc: ['audit@example.com'], text: ['You owe 5'], html: ['<p>You owe 5</p>'] });
        await until(10000, 'SENT', () => has(id, 'sent'));
        const bad = await send('nobody@invalid.example', { subject: 'x', bodyPlain: 'y', bodyHtml: '', ccList: [], bccList: [] });
        await until(10000, 'FAILED for an invalid address', () => has(bad, 'failed'));

        const messageId = request.answer.id.replace(/[<>]/g, '');
        const event = (signature) => JSON.stringify({ signature, 'event-data': { event: 'delivered', recipient: 'jane@example.com', message: { headers: { 'message-id': messageId } } } });
        const post = async (path, body, type) => (await fetch(`${hooks}/${path}`, { method: 'POST', headers: { 'content-type': type }, body })).status;
        assert.strictEqual(await post('events', event({ ...api.sign(), signature: '00' }), 'application/json'), 403);
        assert.strictEqual(await post('events', '{"signature":', 'application/json'), 400);
        await sleep(300);
        assert.ok(!has(id, 'delivered'), 'a forged event delivered the message');
        assert.strictEqual(await post('events', event(api.sign()), 'application/json'), 200);
        await until(10000, 'DELIVERED', () => has(id, 'delivered'));

        const route = new URLSearchParams({ recipient: 'news@mg.example.com', sender: 'ada@example.com', from: 'Ada <ada@example.com>', subject: 'Re: Statement', 'body-plain': 'I will pay Friday', 'body-html': '<p>I will pay Friday</p>', 'Message-Id': '<reply-1@example.com>', ...api.sign() }).toString();
        assert.strictEqual(await post('inbound', route.replace(/signature=[0-9a-f]+/, 'signature=00'), 'application/x-www-form-urlencoded'), 403);
        assert.strictEqual(await post('inbound', route, 'application/x-www-form-urlencoded'), 200);
        const mail = await until(10000, 'receivedEmail', () => received[0]);
        assert.strictEqual(mail.n.email.subject, 'Re: Statement');
        assert.strictEqual(mail.n.email.bodyPlain, 'I will pay Friday');
        assert.strictEqual(mail.customer.customerNumber.number, 'ada@example.com');

        // A route with an attachment comes as multipart/form-data (the file is skipped), and one
        // forwarded to a URL ending in "mime" carries the raw message as body-mime.
        const multipart = new FormData();
        const fields = { recipient: 'news@mg.example.com', sender: 'ada@example.com', subject: 'Receipt attached', 'body-plain': 'See the receipt', 'body-html': '', 'attachment-count': '1', ...api.sign() };
        for (const [k, v] of Object.entries(fields)) multipart.append(k, v);
        multipart.append('attachment-1', new Blob([Buffer.from('%PDF-1.4 receipt')], { type: 'application/pdf' }), 'receipt.pdf');
        const sent = await fetch(`${hooks}/inbound`, { method: 'POST', body: multipart });
        assert.strictEqual(sent.status, 200, await sent.text());
        const withFile = await until(10000, 'receivedEmail from a multipart route', () => received.find((r) => r.n.email.subject === 'Receipt attached'));
        assert.strictEqual(withFile.n.email.bodyPlain, 'See the receipt');
        const raw = 'From: Ada <ada@example.com>\r\nTo: news@mg.example.com\r\nSubject: =?utf-8?q?Malipo_ya_Ijumaa?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nNitalipa Ijumaa \u00e9\r\n';
        const mime = new URLSearchParams({ recipient: 'news@mg.example.com', sender: 'ada@example.com', 'body-mime': raw, ...api.sign() }).toString();
        assert.strictEqual(await post('inbound', mime, 'application/x-www-form-urlencoded'), 200);
        const parsed = await until(10000, 'receivedEmail from body-mime', () => received.find((r) => r.n.email.subject === 'Malipo ya Ijumaa'));
        assert.strictEqual(parsed.n.email.bodyPlain.trim(), 'Nitalipa Ijumaa \u00e9');
        assert.strictEqual(await post('inbound', 'x', 'multipart/form-data; boundary=nothing'), 400);
        console.log(JSON.stringify({ ok: true, requests: api.requests.length }));
        app.disconnect();
        api.close();
    },

    // Hodi's own SMTP receiver: a client speaking SMTP line by line (as a sending mail server
    // would), STARTTLS with Hodi's certificate, a refused and an accepted recipient, a MIME message
    // that reaches the app as receivedEmail once even when sent twice, and one over the size limit.
    async inbox() {
        const statuses = [];
        const received = [];
        const app = await connectApp((c) => {
            c.on('receivedEmail', (n, customer, appData, cb) => { received.push({ n, customer }); cb(null, appData); });
        });
        const client = smtpClient(Number(env('INBOX_PORT')));
        const expect = async (line, code) => {
            const r = line === null ? await client.reply() : await client.send(line);
            assert.strictEqual(r.code, code, `${line} → ${r.text}`);
            return r;
        };
        await expect(null, 220);
        const ehlo = await expect('EHLO mx.mailer.example', 250);
        assert.match(ehlo.text, /STARTTLS/);
        await expect('STARTTLS', 220);
        await client.upgrade();
        assert.ok(client.encrypted(), 'TLS is up');
        const again = await expect('EHLO mx.mailer.example', 250);
        assert.ok(!/STARTTLS/.test(again.text), 'STARTTLS is not offered twice');
        const message = [
            'From: Ada Lovelace <ada@example.com>', 'To: news@hodi.example', 'Subject: =?utf-8?q?Swali_kuhusu_bili?=',
            'Message-ID: <q1@example.com>', 'MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary=b1', '',
            '--b1', 'Content-Type: text/plain; charset=utf-8', '', 'Habari, nina swali.', '..and a line that starts with a dot',
            '--b1', 'Content-Type: text/html; charset=utf-8', '', '<p>Habari, nina swali.</p>', '--b1--',
        ].join('\r\n');
        const deliver = async () => {
            await expect('MAIL FROM:<bounces+q1@mailer.example>', 250);
            await expect('RCPT TO:<nobody@hodi.example>', 550);
            await expect('RCPT TO:<news@hodi.example>', 250);
            await expect('DATA', 354);
            await expect(`${message}\r\n.`, 250);
        };
        await deliver();
        const mail = await until(10000, 'receivedEmail', () => received[0]);
        assert.strictEqual(mail.n.email.subject, 'Swali kuhusu bili');
        assert.strictEqual(mail.n.email.bodyPlain.trim(), 'Habari, nina swali.\r\n.and a line that starts with a dot');
        assert.strictEqual(mail.n.email.bodyHtml.trim(), '<p>Habari, nina swali.</p>');
        assert.strictEqual(mail.customer.customerNumber.number, 'ada@example.com', 'the From header, not the bounce address');
        // A sending server that did not see our 250 sends the same message again: taken, once.
        await deliver();
        await sleep(500);
        assert.strictEqual(received.length, 1, 'a message sent twice reached the app twice');
        // Over the limit (64 KiB here): refused, and nothing reaches the app.
        await expect('MAIL FROM:<ada@example.com>', 250);
        await expect('RCPT TO:<news@hodi.example>', 250);
        await expect('DATA', 354);
        const big = ['From: ada@example.com', 'Subject: big', 'Message-ID: <big@example.com>', '', ...Array(1200).fill('x'.repeat(70))].join('\r\n');
        await expect(`${big}\r\n.`, 552);
        await expect('QUIT', 221);
        await sleep(300);
        assert.strictEqual(received.length, 1);
        console.log(JSON.stringify({ ok: true, received: received.length, statuses: statuses.length }));
        app.disconnect();
    },

    // Sends one SMS and prints its reply (the SMSC is elsewhere, or nowhere).
    async 'send-one'() {
        const app = await connectApp(() => {});
        const customer = new app.Customer({ number: '+254700000002', provider: 'cellular' });
        const r = await customer.sendMessage({ number: '21356', channel: 'sms' }, { body: { text: process.argv[3] || 'one' } });
        console.log(JSON.stringify({ status: r.status, messageId: r.messageId, description: r.description }));
        app.disconnect();
    },
};

const name = process.argv[2];
if (!scenarios[name]) {
    console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(', ')}`);
    process.exit(2);
}
scenarios[name]().then(() => process.exit(0), (err) => {
    console.error(err && err.stack ? err.stack : String(err));
    process.exit(1);
});
