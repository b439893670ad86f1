// End-to-end scenarios driven by the official Elarian JS SDK (npm elarian@0.2.25) against a live Hodi.
//
// Usage: node sdk_e2e.js <scenario>. Reads HODI_HOST, HODI_TLS_PORT, HODI_WS_PORT, HODI_ORG, HODI_APP,
// HODI_KEY from the environment (NODE_EXTRA_CA_CERTS must name Hodi's certificate). Prints one JSON
// line with what it observed and exits 0; any failed expectation exits 1 with the reason.
'use strict';

const assert = require('assert');

const { env, within } = require('./harness');

const host = env('HODI_HOST');
const orgId = env('HODI_ORG');
const appId = env('HODI_APP');
const apiKey = env('HODI_KEY');


// Handlers are registered in `before`, ahead of connect(), as apps do: a notification may arrive
// before the SDK reports 'connected'.
function connectNode(config, before = () => {}) {
    const { Elarian } = require('elarian');
    const client = new Elarian({ orgId, appId, ...config });
    before(client);
    const connected = new Promise((resolve, reject) => {
        client.on('connected', () => resolve(client));
        client.on('error', (err) => reject(err instanceof Error ? err : new Error(String(err && err.message ? err.message : err))));
    });
    client.connect({ host, port: Number(env('HODI_TLS_PORT')) });
    return { client, connected };
}

function reminderWaiter(client) {
    const queue = [];
    const waiters = [];
    client.on('reminder', (notification, customer, appData, callback) => {
        const entry = { notification, appData, callback };
        const w = waiters.shift();
        if (w) w(entry); else queue.push(entry);
    });
    return () => new Promise((resolve) => {
        const e = queue.shift();
        if (e) resolve(e); else waiters.push(resolve);
    });
}

const scenarios = {
    // TLS, API key: auth token, getState, a reminder notification and the app's reply coming back.
    async tls() {
        let nextReminder;
        const { client, connected } = connectNode({ apiKey }, (c) => { nextReminder = reminderWaiter(c); });
        await within(10000, 'TLS connection', connected);

        const token = await within(5000, 'generateAuthToken', client.generateAuthToken());
        assert.ok(token.token.startsWith('hodi_tok_'), `token ${token.token}`);
        assert.ok(token.lifetime > 0 && token.lifetime <= 3600, `lifetime ${token.lifetime}`);

        const customer = new client.Customer({ number: '+254700000001', provider: 'cellular' });
        const state = await within(5000, 'getState', customer.getState());
        assert.match(state.customerId, /^cst_/);
        const again = await within(5000, 'getState again', new client.Customer({ number: '+254700000001', provider: 'cellular' }).getState());
        assert.strictEqual(again.customerId, state.customerId, 'the same number must give the same customer');
        const byId = await within(5000, 'getState by id', new client.Customer({ id: state.customerId }).getState());
        assert.strictEqual(byId.customerId, state.customerId);
        await assert.rejects(new client.Customer({ id: 'cst_does_not_exist' }).getState(), /unknown customer id/);

        const now = Math.floor(Date.now() / 1000);
        const added = await customer.addReminder({ key: 'first', remindAt: now + 1, payload: 'pay me' });
        assert.strictEqual(added.status, true);
        const first = await within(8000, 'first reminder', nextReminder());
        assert.strictEqual(first.notification.reminder.key, 'first');
        assert.strictEqual(first.notification.reminder.payload, 'pay me');
        assert.strictEqual(first.notification.customerId, state.customerId);
        assert.strictEqual(first.appData, undefined, 'no app data yet');
        first.callback(null, { visits: 1 });

        // Due a second from now, not at once: the SDK sends the first's answer (with the app data) on
        // a later tick than this command, and a notification already due could go out before the
        // answer arrives (one customer may have several notifications unanswered at a time).
        await customer.addReminder({ key: 'second', remindAt: Math.floor(Date.now() / 1000) + 2, payload: 'again' });
        const second = await within(8000, 'second reminder', nextReminder());
        assert.strictEqual(second.notification.reminder.key, 'second');
        assert.deepStrictEqual(second.appData, { visits: 1 }, 'the reply to the first reminder must have been stored');
        second.callback(null, { visits: 2 });

        // Far enough ahead that it cannot fire before it is cancelled.
        await customer.addReminder({ key: 'cancelled', remindAt: Math.floor(Date.now() / 1000) + 60, payload: 'never' });
        const cancelled = await customer.cancelReminder('cancelled');
        assert.strictEqual(cancelled.status, true);

        console.log(JSON.stringify({ ok: true, customerId: state.customerId, token: token.token }));
        // Give the second reply time to reach the server before we go.
        await new Promise((r) => setTimeout(r, 500));
        client.disconnect();
    },

    // A notification scheduled while no app is connected waits for one.
    async queued() {
        let nextReminder;
        const { client, connected } = connectNode({ apiKey }, (c) => { nextReminder = reminderWaiter(c); });
        await within(10000, 'TLS connection', connected);
        const first = await within(8000, 'queued reminder', nextReminder());
        assert.strictEqual(first.notification.reminder.key, env('HODI_EXPECT_KEY'));
        first.callback(null, undefined);
        console.log(JSON.stringify({ ok: true, key: first.notification.reminder.key }));
        await new Promise((r) => setTimeout(r, 300));
        client.disconnect();
    },

    // Sets a reminder then leaves, so that it fires with no app connected.
    async schedule() {
        const { client, connected } = connectNode({ apiKey, allowNotifications: false });
        await within(10000, 'TLS connection', connected);
        const customer = new client.Customer({ number: '+254700000002', provider: 'cellular' });
        const when = Math.floor(Date.now() / 1000) + Number(env('HODI_IN_SECONDS'));
        const added = await customer.addReminder({ key: env('HODI_EXPECT_KEY'), remindAt: when, payload: 'later' });
        assert.strictEqual(added.status, true);
        console.log(JSON.stringify({ ok: true }));
        client.disconnect();
    },

    // A wrong API key is refused with a message that says so.
    async 'wrong-key'() {
        const { connected } = connectNode({ apiKey: 'hodi_key_wrong' });
        const err = await within(10000, 'an error', connected.then(() => { throw new Error('connected with a wrong key'); }, (e) => e));
        assert.match(String(err.message), /authentication failed/);
        console.log(JSON.stringify({ ok: true, error: err.message }));
    },

    // An expired (or unknown) auth token is refused with a message that says so.
    async 'bad-token'() {
        const { connected } = connectNode({ authToken: env('HODI_TOKEN') });
        const err = await within(10000, 'an error', connected.then(() => { throw new Error('connected with a bad token'); }, (e) => e));
        assert.match(String(err.message), new RegExp(env('HODI_EXPECT_ERROR')));
        console.log(JSON.stringify({ ok: true, error: err.message }));
    },

    // The SDK's browser entry over WebSocket, with an auth token (browsers never hold API keys).
    async websocket() {
        const { client: nodeClient, connected } = connectNode({ apiKey });
        await within(10000, 'TLS connection', connected);
        const { token } = await nodeClient.generateAuthToken();
        nodeClient.disconnect();

        global.window = global;
        global.WebSocket = require('ws');
        const { Elarian } = require('elarian/lib/index.web');
        const client = new Elarian({ orgId, appId, authToken: token });
        let notified = false;
        client.on('reminder', (n, c, d, cb) => { notified = true; cb(null, undefined); });
        await within(10000, 'WebSocket connection', new Promise((resolve, reject) => {
            client.on('connected', resolve);
            client.on('error', reject);
            client.connect({ host, port: Number(env('HODI_WS_PORT')) });
        }));
        const customer = new client.Customer({ number: '+254700000003', provider: 'cellular' });
        const state = await within(5000, 'getState over WebSocket', customer.getState());
        assert.match(state.customerId, /^cst_/);
        // Simplex: a due reminder must not be sent to this socket.
        await customer.addReminder({ key: 'ws', remindAt: Math.floor(Date.now() / 1000), payload: 'x' });
        await new Promise((r) => setTimeout(r, 1500));
        assert.strictEqual(notified, false, 'a simplex socket received a notification');
        console.log(JSON.stringify({ ok: true, customerId: state.customerId }));
        client.disconnect();
    },

    // Every customer-state command through the SDK's own Customer and Elarian methods, read back
    // through getState(); customerActivity and by-tag reminder notifications.
    async 'customer-state'() {
        const activities = [];
        const reminders = [];
        const { client, connected } = connectNode({ apiKey }, (c) => {
            c.on('customerActivity', (n, customer, appData, cb) => { activities.push(n); cb(null, appData); });
            c.on('reminder', (n, customer, appData, cb) => { reminders.push(n); cb(null, appData); });
        });
        await within(10000, 'TLS connection', connected);
        const now = () => Math.floor(Date.now() / 1000);
        const ada = new client.Customer({ number: '+254711000001', provider: 'cellular' });
        const { customerId: adaId } = await ada.getState();

        // Tags, with and without expiry; delete.
        await ada.updateTags([{ key: 'tier', value: 'gold' }, { key: 'temp', value: 'x', expiresAt: now() + 2 }, { key: 'city', value: 'Nairobi' }]);
        let tags = (await ada.getState()).identityState.tags;
        assert.deepStrictEqual(tags.map((t) => [t.key, t.value]), [['city', 'Nairobi'], ['temp', 'x'], ['tier', 'gold']]);
        assert.strictEqual(tags.find((t) => t.key === 'tier').expiration, 0);
        await ada.deleteTags(['city']);
        await assert.rejects(ada.updateTags([{ key: 'old', value: 'y', expiresAt: now() - 10 }]), /expiry in the past/);

        // Secondary ids: unique per org, found by getState, deletable.
        await ada.updateSecondaryIds([{ key: 'email', value: 'ada@example.com' }]);
        const bySecondary = new client.Customer({});
        bySecondary.secondaryId = { key: 'email', value: 'ada@example.com' };
        assert.strictEqual((await bySecondary.getState()).customerId, adaId);
        const grace = new client.Customer({ number: '+254711000002', provider: 'cellular' });
        const { customerId: graceId } = await grace.getState();
        await assert.rejects(grace.updateSecondaryIds([{ key: 'email', value: 'ada@example.com' }]), /belongs to another customer/);
        await grace.updateSecondaryIds([{ key: 'email', value: 'grace@example.com' }]);

        // Metadata (the SDK serialises values as JSON text).
        await ada.updateMetadata({ name: 'Ada', age: 36 });
        assert.deepStrictEqual(await ada.getMetadata(), { name: 'Ada', age: 36 });
        await ada.deleteMetadata(['age']);
        assert.deepStrictEqual(await ada.getMetadata(), { name: 'Ada' });

        // App data: lease (the SDK resolves with the value, {} when none), update (releases), delete.
        assert.deepStrictEqual(await ada.leaseAppData(), {});
        await ada.updateAppData({ step: 1 });
        assert.deepStrictEqual(await ada.leaseAppData(), { step: 1 });
        await ada.updateAppData({ step: 2 });
        await ada.deleteAppData();
        assert.deepStrictEqual(await ada.leaseAppData(), {});
        await ada.deleteAppData();

        // (Lease contention needs two sockets; the SDK binds every Customer to the last client made in
        // the process, so tests/customer_state.rs covers it with two Rust sockets.)

        // Activity: a session with activities, and a customerActivity notification.
        await ada.updateActivity('web', { sessionId: 'sess-1', key: 'login', properties: { ip: '127.0.0.1' } });
        await ada.updateActivity('web', { sessionId: 'sess-1', key: 'logout', properties: {} });
        await within(5000, 'customerActivity notifications', (async () => { while (activities.length < 2) await new Promise((r) => setTimeout(r, 50)); })());
        assert.strictEqual(activities[0].activity.key, 'login');
        assert.deepStrictEqual(activities[0].activity.properties, { ip: '127.0.0.1' });
        assert.strictEqual(activities[0].customerId, adaId);
        const { sessions } = (await ada.getState()).activityState;
        assert.strictEqual(sessions.length, 1);
        assert.strictEqual(sessions[0].sessionId, 'sess-1');
        assert.deepStrictEqual(sessions[0].activities.map((a) => a.key), ['login', 'logout']);
        assert.deepStrictEqual(sessions[0].activities[0].properties, [{ ip: '127.0.0.1' }]);

        // By-tag reminders: every customer tagged tier=gold now gets one, carrying tag and work id.
        const linus = new client.Customer({ number: '+254711000003', provider: 'cellular' });
        await linus.updateTags([{ key: 'tier', value: 'gold' }]);
        await grace.updateTags([{ key: 'tier', value: 'silver' }]);
        const work = await client.addCustomerReminderByTag({ key: 'tier', value: 'gold' }, { key: 'promo', remindAt: now() + 1, payload: 'gold promo' });
        assert.strictEqual(work.status, true);
        assert.match(work.workId, /^wrk_/);
        await within(8000, 'by-tag reminders', (async () => { while (reminders.length < 2) await new Promise((r) => setTimeout(r, 50)); })());
        await new Promise((r) => setTimeout(r, 500));
        assert.strictEqual(reminders.length, 2, 'only the two gold customers get the reminder');
        for (const r of reminders) {
            assert.strictEqual(r.reminder.key, 'promo');
            assert.strictEqual(r.reminder.payload, 'gold promo');
            assert.strictEqual(r.workId.value, work.workId);
            assert.strictEqual(r.tag.mapping.key, 'tier');
        }
        const notified = reminders.map((r) => r.customerId).sort();
        const { customerId: linusId } = await linus.getState();
        assert.deepStrictEqual(notified, [adaId, linusId].sort());
        const cancel = await client.addCustomerReminderByTag({ key: 'tier', value: 'gold' }, { key: 'later', remindAt: now() + 3, payload: 'x' });
        const cancelled = await client.cancelCustomerReminderByTag({ key: 'tier', value: 'gold' }, 'later');
        assert.ok(cancel.workId && cancelled.workId);

        // Adoption: Ada takes over Grace; Grace's id is decommissioned, her number now finds Ada.
        const adopted = await ada.adoptState(grace);
        assert.strictEqual(adopted.status, true);
        const merged = await ada.getState();
        assert.ok(merged.identityState.secondaryIds.some((s) => s.value === 'grace@example.com'));
        assert.strictEqual(merged.identityState.tags.find((t) => t.key === 'tier').value, 'gold', "the adopter's own tag wins");
        assert.ok(merged.activityState.customerNumbers.some((n) => n.number === '+254711000002'));
        await assert.rejects(new client.Customer({ id: graceId }).getState(), /decommissioned/);
        const graceNumber = await new client.Customer({ number: '+254711000002', provider: 'cellular' }).getState();
        assert.strictEqual(graceNumber.customerId, adaId);

        // The temporary tag has expired meanwhile.
        await new Promise((r) => setTimeout(r, Math.max(0, 2500)));
        tags = (await ada.getState()).identityState.tags;
        assert.ok(!tags.some((t) => t.key === 'temp'), 'expired tag still visible');

        console.log(JSON.stringify({ ok: true, adaId, workId: work.workId }));
        await new Promise((r) => setTimeout(r, 300));
        client.disconnect();
    },

    // Messaging through the SDK's Elarian and Simulator classes: SMS both ways, a three-step USSD
    // menu ending in a terminal menu, consent blocking delivery, an unprovisioned channel number.
    async messaging() {
        const { Simulator } = require('elarian');
        const sms = { number: '21356', channel: 'sms' };
        const ussd = { number: '*384#', channel: 'ussd' };
        const phoneInbox = [];
        const { client: app, connected } = connectNode({ apiKey }, (c) => {
            c.on('receivedSms', (n, customer, appData, cb) => cb({ body: { text: `got ${n.text}` } }, appData));
            c.on('ussdSession', (n, customer, appData, cb) => {
                const step = (appData && appData.step) || 0;
                const input = n.input.text;
                if (step === 0) cb({ text: 'Welcome\n1. Balance\n2. Quit', isTerminal: false }, { step: 1 });
                else if (step === 1 && input === '1') cb({ text: 'Balance: KES 100\n1. Back', isTerminal: false }, { step: 2 });
                else cb({ text: `Bye (${input})`, isTerminal: true }, { step: 0 });
            });
        });
        await within(10000, 'app connection', connected);
        const phone = new Simulator({ orgId, appId, apiKey });
        phone.on('sendMessage', (data, customer, appData, cb) => { phoneInbox.push(data); cb(); });
        await within(10000, 'simulator connection', new Promise((resolve, reject) => {
            phone.on('connected', resolve);
            phone.on('error', reject);
            phone.connect({ host, port: Number(env('HODI_TLS_PORT')) });
        }));
        const waitInbox = (n, what) => within(8000, what, (async () => { while (phoneInbox.length < n) await new Promise((r) => setTimeout(r, 25)); })());

        // SMS in: the app's reply reaches the phone.
        const inbound = await phone.receiveMessage('+254711000100', sms, 'sms-1', [{ text: 'hi' }]);
        assert.strictEqual(inbound.status, true, inbound.description);
        await waitInbox(1, 'the reply SMS');
        assert.strictEqual(phoneInbox[0].message.body.text, 'got hi');
        assert.deepStrictEqual(phoneInbox[0].channelNumber, { number: '21356', channel: 'sms' });

        // SMS out.
        const customer = new app.Customer({ number: '+254711000100', provider: 'cellular' });
        const sent = await customer.sendMessage(sms, { body: { text: 'promo' } });
        assert.strictEqual(sent.status, 'sent', sent.description);
        assert.match(sent.messageId, /^msg_/);
        await waitInbox(2, 'the promo SMS');
        assert.strictEqual(phoneInbox[1].message.body.text, 'promo');
        assert.strictEqual(phoneInbox[1].messageId, sent.messageId);

        // USSD: three steps, the last menu terminal.
        const dial = (text) => phone.receiveMessage('+254711000100', ussd, 'ussd-1', [{ ussd: { status: 'active', text } }]);
        const m1 = await dial('');
        assert.strictEqual(m1.message.body.ussd.text, 'Welcome\n1. Balance\n2. Quit');
        assert.strictEqual(m1.message.body.ussd.isTerminal, false);
        const m2 = await dial('1');
        assert.strictEqual(m2.message.body.ussd.text, 'Balance: KES 100\n1. Back');
        const m3 = await dial('2');
        assert.strictEqual(m3.message.body.ussd.text, 'Bye (2)');
        assert.strictEqual(m3.message.body.ussd.isTerminal, true);

        // Consent: BLOCK stops delivery, ALLOW restores it.
        const blocked = await customer.updateMessagingConsent(sms, 'block');
        assert.strictEqual(blocked.status, 'completed');
        const refused = await customer.sendMessage(sms, { body: { text: 'no' } });
        assert.strictEqual(refused.status, 'no_consent');
        await customer.updateMessagingConsent(sms, 'allow');
        assert.strictEqual((await customer.sendMessage(sms, { body: { text: 'yes' } })).status, 'sent');

        // An unprovisioned channel number.
        const invalid = await customer.sendMessage({ number: '99999', channel: 'sms' }, { body: { text: 'x' } });
        assert.strictEqual(invalid.status, 'invalid_channel_number');

        // The conversation is in the customer's messaging state.
        const state = await customer.getState();
        // (sic: the SDK names this field `messasges`.)
        const messages = state.messagingState.messasges;
        assert.ok(messages.length >= 8, `messages in state: ${messages.length}`);
        const sessions = state.messagingState.sessions;
        assert.ok(sessions.some((s) => s.sessionId === 'ussd-1'), 'the finished USSD session is in the state');
        console.log(JSON.stringify({ ok: true, messages: messages.length }));
        phone.disconnect();
        await new Promise((r) => setTimeout(r, 300));
        app.disconnect();
    },

    // Every chat channel both ways (WhatsApp, Telegram, Messenger, email), with the delivery status
    // of each outbound message as a messageStatus notification.
    async channels() {
        const { Simulator } = require('elarian');
        const phoneInbox = [];
        const statuses = [];
        const heard = {};
        const { client: app, connected } = connectNode({ apiKey }, (c) => {
            const echo = (event) => c.on(event, (n, customer, appData, cb) => {
                heard[event] = n;
                const what = n.email ? n.email.subject : n.text;
                cb({ body: { text: `${event}: ${what}` } }, appData);
            });
            ['receivedWhatsapp', 'receivedTelegram', 'receivedFbMessenger', 'receivedEmail'].forEach(echo);
            c.on('messageStatus', (n, customer, appData, cb) => { statuses.push(n); cb(null, appData); });
        });
        await within(10000, 'app connection', connected);
        const phone = new Simulator({ orgId, appId, apiKey });
        phone.on('sendMessage', (data, customer, appData, cb) => { phoneInbox.push(data); cb(); });
        await within(10000, 'simulator connection', new Promise((resolve, reject) => {
            phone.on('connected', resolve);
            phone.on('error', reject);
            phone.connect({ host, port: Number(env('HODI_TLS_PORT')) });
        }));
        const channels = [
            { channel: { number: '+254711082001', channel: 'whatsapp' }, who: { number: '+254711000300', provider: 'cellular' }, event: 'receivedWhatsapp', part: { text: 'hi on whatsapp' } },
            { channel: { number: 'hodi_bot', channel: 'telegram' }, who: { number: 'ada_tg', provider: 'telegram' }, event: 'receivedTelegram', part: { text: 'hi on telegram' } },
            { channel: { number: 'hodi_page', channel: 'fb_messenger' }, who: { number: 'ada.fb', provider: 'facebook' }, event: 'receivedFbMessenger', part: { text: 'hi on messenger' } },
            { channel: { number: 'hodi@localhost', channel: 'email' }, who: { number: 'ada@example.com', provider: 'email' }, event: 'receivedEmail', part: { email: { subject: 'hi by email', bodyPlain: 'hello', bodyHtml: '', ccList: [], bccList: [] } } },
        ];
        const sentIds = [];
        for (const [i, c] of channels.entries()) {
            // In: the app's handler for this channel answers on the same channel.
            const r = await phone.receiveMessage(c.who.number, c.channel, `chat-${i}`, [c.part]);
            assert.strictEqual(r.status, true, `${c.event}: ${r.description}`);
            await within(8000, `the ${c.event} answer`, (async () => { while (phoneInbox.length < 2 * i + 1) await new Promise((r) => setTimeout(r, 25)); })());
            const answer = phoneInbox[2 * i];
            assert.deepStrictEqual(answer.channelNumber, c.channel);
            assert.match(answer.message.body.text, new RegExp(`^${c.event}: hi`));
            assert.strictEqual(answer.customerNumber.number, c.who.number);
            // Out: the app writes first.
            const customer = new app.Customer(c.who);
            const sent = await customer.sendMessage(c.channel, { body: { text: `news on ${c.channel.channel}` } });
            assert.strictEqual(sent.status, 'sent', `${c.channel.channel}: ${sent.description}`);
            sentIds.push(sent.messageId);
            await within(8000, `the ${c.channel.channel} news`, (async () => { while (phoneInbox.length < 2 * i + 2) await new Promise((r) => setTimeout(r, 25)); })());
            assert.strictEqual(phoneInbox[2 * i + 1].message.body.text, `news on ${c.channel.channel}`);
            assert.strictEqual(phoneInbox[2 * i + 1].messageId, sent.messageId);
        }
        assert.strictEqual(heard.receivedEmail.email.subject, 'hi by email');
        assert.strictEqual(heard.receivedTelegram.text, 'hi on telegram');
        // Every message the app sent (four answers, four news) is reported delivered.
        await within(10000, 'delivery statuses', (async () => {
            while (statuses.filter((s) => s.status === 'delivered').length < 8) await new Promise((r) => setTimeout(r, 25));
        })());
        for (const id of sentIds) assert.ok(statuses.some((s) => s.messageId === id && s.status === 'delivered'), `no delivered status for ${id}`);
        // Each chat channel opened a session window: the channel is in session in the customer's state.
        const state = await new app.Customer(channels[1].who).getState();
        assert.ok(state.messagingState.channels.some((c) => c.inSession && c.inSession.sessionId), JSON.stringify(state.messagingState.channels));
        console.log(JSON.stringify({ ok: true, delivered: statuses.length }));
        phone.disconnect();
        await new Promise((r) => setTimeout(r, 300));
        app.disconnect();
    },

    // A simulated voice call driven by the app's replies: the app calls, the phone answers, the
    // app asks for a digit (getDigits), the phone presses 1, the app answers, the phone hangs up.
    async voice() {
        const { Simulator } = require('elarian');
        const simPb = require('elarian/lib/utils/service/simulator_socket_pb');
        const msgPb = require('elarian/lib/utils/service/messaging_model_pb');
        const { StringValue } = require('google-protobuf/google/protobuf/wrappers_pb');
        const voice = { number: '+254711082000', channel: 'voice' };
        const calls = [];
        const ended = [];
        const { client: app, connected } = connectNode({ apiKey }, (c) => {
            c.on('messagingSessionEnded', (n, customer, appData, cb) => { ended.push(n); cb(null, appData); });
            c.on('voiceCall', (n, customer, appData, cb) => {
                calls.push(n.voice);
                if (n.voice.status === 'answered') {
                    cb([{ say: { text: 'Welcome', voice: 'female' } }, { getDigits: { say: { text: 'Press 1 to pay', voice: 'male' }, numDigits: 1, timeout: 10, finishOnKey: '#' } }], appData);
                } else if (n.voice.dtmfDigits) {
                    cb([{ say: { text: `You pressed ${n.voice.dtmfDigits}`, voice: 'female' } }], appData);
                } else {
                    cb(null, appData);
                }
            });
        });
        await within(10000, 'app connection', connected);
        const phone = new Simulator({ orgId, appId, apiKey });
        const rings = [];
        phone.on('makeVoiceCall', (data, customer, appData, cb) => { rings.push(data); cb(); });
        await within(10000, 'simulator connection', new Promise((resolve, reject) => {
            phone.on('connected', resolve);
            phone.on('error', reject);
            phone.connect({ host, port: Number(env('HODI_TLS_PORT')) });
        }));
        // Customer.makeVoiceCall is commented out in the SDK; a voice message starts the call.
        const customer = new app.Customer({ number: '+254711000400', provider: 'cellular' });
        const call = await customer.sendMessage(voice, { body: { voice: [{ say: { text: 'Hello', voice: 'female' } }] } });
        assert.strictEqual(call.status, 'session_initiated', call.description);
        const sessionId = call.sessionId;
        assert.match(sessionId, /^ses_/);
        await within(8000, 'the ring', (async () => { while (rings.length < 1) await new Promise((r) => setTimeout(r, 25)); })());
        assert.strictEqual(rings[0].customerNumber.number, '+254711000400');

        const answered = await phone.receiveMessage('+254711000400', voice, sessionId, [{ voice: { status: 'answered', direction: 'outbound' } }]);
        assert.strictEqual(answered.status, true, answered.description);
        const steps = answered.message.body.voice.actionsList;
        assert.strictEqual(steps[0].say.text, 'Welcome');
        assert.strictEqual(steps[1].getDigits.numDigits.value, 1);
        assert.strictEqual(steps[1].getDigits.say.text, 'Press 1 to pay');

        // The SDK's Simulator cannot send digits (it calls `setDtmlDigits`, a typo, and throws), so
        // the keypress goes over the same SDK socket built with the SDK's own generated classes.
        const press = new simPb.SimulatorToServerCommand().setReceiveMessage(
            new simPb.ReceiveMessageSimulatorCommand()
                .setCustomerNumber('+254711000400')
                .setChannelNumber(new msgPb.MessagingChannelNumber().setNumber(voice.number).setChannel(msgPb.MessagingChannel.MESSAGING_CHANNEL_VOICE))
                .setSessionId(new StringValue().setValue(sessionId))
                .setPartsList([new msgPb.InboundMessageBody().setVoice(new msgPb.VoiceCallInputMessageBody()
                    .setDirection(2).setStatus(msgPb.VoiceCallStatus.VOICE_CALL_STATUS_ACTIVE)
                    .setDtmfDigits(new StringValue().setValue('1')))]),
        );
        const pressed = await within(8000, 'the answer to a keypress', new Promise((resolve, reject) => {
            phone.getSocket().requestResponse({ data: Buffer.from(press.serializeBinary()) }).subscribe({
                onComplete: (p) => resolve(simPb.SimulatorToServerCommandReply.deserializeBinary(p.data).toObject()),
                onError: reject,
            });
        }));
        assert.strictEqual(pressed.status, true, pressed.description);
        assert.strictEqual(pressed.message.body.voice.actionsList[0].say.text, 'You pressed 1');

        const hangup = await phone.receiveMessage('+254711000400', voice, sessionId, [{ voice: { status: 'completed', direction: 'outbound', hangupCause: 'normal_clearing' } }]);
        assert.strictEqual(hangup.status, true, hangup.description);
        await within(8000, `the hang-up and the session's end (so far: ${JSON.stringify(calls)})`, (async () => { while (calls.length < 3 || ended.length < 1) await new Promise((r) => setTimeout(r, 25)); })());
        // (The SDK encodes status 'completed' as DIAL_COMPLETED; the hang-up cause is what ends the call.)
        assert.deepStrictEqual(calls.map((c) => c.status).slice(0, 2), ['answered', 'active']);
        assert.strictEqual(calls[1].dtmfDigits, '1');
        assert.strictEqual(calls[2].hangupCause, 'normal_clearing');
        assert.strictEqual(ended[0].reason, 'normal_clearing');
        const state = await customer.getState();
        const session = state.messagingState.sessions.find((x) => x.sessionId === sessionId);
        assert.ok(session, `session ${sessionId} in state: ${JSON.stringify(state.messagingState.sessions)}`);
        console.log(JSON.stringify({ ok: true, sessionId, notifications: calls.length }));
        phone.disconnect();
        await new Promise((r) => setTimeout(r, 300));
        app.disconnect();
    },

    // Send-by-tag to HODI_TAGGED customers (10,000 by default) tagged through the SDK: every one
    // reaches the simulator and every one comes back to the app as delivered.
    async 'by-tag'() {
        const { Simulator } = require('elarian');
        const total = Number(process.env.HODI_TAGGED || 10000);
        const reached = new Set();
        let delivered = 0;
        const { client: app, connected } = connectNode({ apiKey }, (c) => {
            c.on('messageStatus', (n, customer, appData, cb) => { if (n.status === 'delivered') delivered += 1; cb(null, appData); });
        });
        await within(10000, 'app connection', connected);
        const phone = new Simulator({ orgId, appId, apiKey });
        phone.on('sendMessage', (data, customer, appData, cb) => { reached.add(data.customerNumber.number); cb(); });
        await within(10000, 'simulator connection', new Promise((resolve, reject) => {
            phone.on('connected', resolve);
            phone.on('error', reject);
            phone.connect({ host, port: Number(env('HODI_TLS_PORT')) });
        }));
        const number = (i) => `+25472${String(i).padStart(7, '0')}`;
        let next = 0;
        const tagger = async () => {
            while (next < total) {
                const i = next; next += 1;
                const r = await new app.Customer({ number: number(i), provider: 'cellular' }).updateTags([{ key: 'campaign', value: 'nov' }]);
                assert.strictEqual(r.status, true, r.description);
            }
        };
        const tagStarted = Date.now();
        await within(240000, 'tagging', Promise.all(Array.from({ length: 32 }, tagger)));
        const tagMs = Date.now() - tagStarted;
        // A customer with another value of the tag is not sent to.
        await new app.Customer({ number: '+254729999999', provider: 'cellular' }).updateTags([{ key: 'campaign', value: 'oct' }]);
        const started = Date.now();
        const work = await app.sendMessageByTag({ key: 'campaign', value: 'nov' }, { number: '21356', channel: 'sms' }, { body: { text: 'November offers' } });
        assert.strictEqual(work.status, true, work.description);
        assert.match(work.workId, /^wrk_/);
        await within(120000, `${total} messages at the phone`, (async () => { while (reached.size < total) await new Promise((r) => setTimeout(r, 50)); })());
        const sendMs = Date.now() - started;
        await within(120000, `${total} delivered statuses`, (async () => { while (delivered < total) await new Promise((r) => setTimeout(r, 50)); })());
        assert.ok(!reached.has('+254729999999'), 'a customer tagged with another value got the message');
        assert.strictEqual(reached.size, total);
        console.log(JSON.stringify({ ok: true, tagged: total, reached: reached.size, delivered, tagMs, sendMs }));
        phone.disconnect();
        await new Promise((r) => setTimeout(r, 300));
        app.disconnect();
    },

    // Every replay command, then read back through getState; replayed twice to show they import once.
    async replays() {
        const { client, connected } = connectNode({ apiKey });
        await within(10000, 'connection', connected);
        const who = { number: '+254711000500', provider: 'cellular' };
        const sms = { number: '21356', channel: 'sms' };
        const ussd = { number: '*384#', channel: 'ussd' };
        const t0 = Math.floor(Date.now() / 1000) - 3600;
        for (let pass = 0; pass < 2; pass += 1) {
            const results = [
                await client.replayReceivedMessage(who, sms, { messageId: 'prov-in-1', receivedAt: t0, provider: 'at', parts: [{ text: 'old question' }], cost: { amount: 0, currencyCode: 'KES' } }),
                await client.replaySentMessage(who, sms, { messageId: 'prov-out-1', sentAt: t0 + 60, provider: 'at', status: 'sent', message: { body: { text: 'old answer' } }, cost: { amount: 1, currencyCode: 'KES' } }),
                await client.replayMessageStatusUpdate(who, sms, { messageId: 'prov-out-1', status: 'delivered', updatedAt: t0 + 61, cost: { amount: 1, currencyCode: 'KES' } }),
                await client.replayMessageReactionUpdate(who, sms, 'prov-out-1', 'clicked', t0 + 120),
                await client.replayMessagingSession(who, ussd, { sessionId: 'prov-ses-1', startedAt: t0 + 200, duration: 30, reason: 'normal_clearing', cost: { amount: 0, currencyCode: 'KES' } }),
                await client.replayMessagingConsentUpdate(who, sms, 'block', t0 + 300),
            ];
            results.forEach((r, i) => assert.strictEqual(r.status, true, `pass ${pass} replay ${i}: ${r.description}`));
        }
        const state = await new client.Customer(who).getState();
        const messages = state.messagingState.messasges;
        assert.strictEqual(messages.length, 2, `imported once each: ${JSON.stringify(messages)}`);
        const received = messages.find((m) => m.received);
        const sent = messages.find((m) => m.sent);
        assert.ok(received && sent, JSON.stringify(messages));
        assert.strictEqual(received.received.partsList[0].text, 'old question');
        // getState hands messages over as the generated classes' toObject(): enums are numbers.
        assert.strictEqual(sent.sent.status, 300, 'DELIVERED');
        assert.strictEqual(sent.sent.message.body.text, 'old answer');
        assert.strictEqual(sent.sent.reactionsList.length, 1, 'the reaction is stored once');
        const session = state.messagingState.sessions.find((x) => x.sessionId === 'prov-ses-1');
        assert.ok(session, JSON.stringify(state.messagingState.sessions));
        const channel = state.messagingState.channels.find((c) => c.blocked);
        assert.ok(channel, `a blocked channel: ${JSON.stringify(state.messagingState.channels)}`);
        // Consent replayed as BLOCK applies to sending.
        const refused = await new client.Customer(who).sendMessage(sms, { body: { text: 'new' } });
        assert.strictEqual(refused.status, 'no_consent');
        console.log(JSON.stringify({ ok: true, messages: messages.length }));
        await new Promise((r) => setTimeout(r, 300));
        client.disconnect();
    },

    // Reactions: the customer answers STOP (UNSUBSCRIBED), the provider reports a click through the
    // operator's CLI (CLICKED); each reaches the app as sentMessageReaction.
    async reactions() {
        const { Simulator } = require('elarian');
        const { execFileSync } = require('child_process');
        const sms = { number: '21356', channel: 'sms' };
        const reactions = [];
        const received = [];
        const { client: app, connected } = connectNode({ apiKey }, (c) => {
            c.on('sentMessageReaction', (n, customer, appData, cb) => { reactions.push(n); cb(null, appData); });
            c.on('receivedSms', (n, customer, appData, cb) => { received.push(n.text); cb(null, appData); });
        });
        await within(10000, 'app connection', connected);
        const phone = new Simulator({ orgId, appId, apiKey });
        phone.on('sendMessage', (data, customer, appData, cb) => cb());
        await within(10000, 'simulator connection', new Promise((resolve, reject) => {
            phone.on('connected', resolve);
            phone.on('error', reject);
            phone.connect({ host, port: Number(env('HODI_TLS_PORT')) });
        }));
        const customer = new app.Customer({ number: '+254711000600', provider: 'cellular' });
        const sent = await customer.sendMessage(sms, { body: { text: 'Offer: http://shop.example/nov' } });
        assert.strictEqual(sent.status, 'sent', sent.description);
        const stop = await phone.receiveMessage('+254711000600', sms, 'stop-1', [{ text: 'STOP' }]);
        assert.strictEqual(stop.status, true, stop.description);
        await within(8000, 'the unsubscribe', (async () => { while (reactions.length < 1) await new Promise((r) => setTimeout(r, 25)); })());
        assert.strictEqual(reactions[0].messageId, sent.messageId);
        assert.strictEqual(reactions[0].reaction, 'unsubscribed');
        assert.deepStrictEqual(reactions[0].channelNumber, sms);
        assert.ok(received.includes('STOP'), 'the STOP itself reaches the app as an SMS');

        // The CLI reads HODI_* as configuration: give it only what it needs.
        const cliEnv = { PATH: process.env.PATH, HODI_DATA_DIR: env('HODI_DATA_DIR'), HODI_DATABASE_URL: env('HODI_DATABASE_URL') };
        const out = execFileSync(env('HODI_BIN'), ['react', '--message', sent.messageId, '--reaction', 'clicked'], { env: cliEnv }).toString();
        assert.match(out, /recorded clicked/);
        await within(8000, 'the click', (async () => { while (reactions.length < 2) await new Promise((r) => setTimeout(r, 25)); })());
        assert.strictEqual(reactions[1].reaction, 'clicked');
        assert.strictEqual(reactions[1].messageId, sent.messageId);
        const state = await customer.getState();
        const stored = state.messagingState.messasges.find((m) => m.sent && m.sent.messageId === sent.messageId);
        // (getState's messages are raw toObject(): UNSUBSCRIBED = 200, CLICKED = 100.)
        assert.deepStrictEqual(stored.sent.reactionsList.map((r) => r.reaction), [200, 100]);
        console.log(JSON.stringify({ ok: true, reactions: reactions.map((r) => r.reaction) }));
        phone.disconnect();
        await new Promise((r) => setTimeout(r, 300));
        app.disconnect();
    },

    // Payments with the SDK's Elarian and Simulator classes: a payment received into the purse,
    // every counterparty pair, both checkout outcomes, payouts, a purse notification, replays, and
    // the wallets and logs read back through getState.
    async payments() {
        const { Simulator } = require('elarian');
        const purseId = env('HODI_PURSE');
        const paybill = { number: '525900', channel: 'cellular' };
        const statuses = [];
        const purseStatuses = [];
        const received = [];
        const { client: app, connected } = connectNode({ apiKey }, (c) => {
            c.on('paymentStatus', (n, customer, appData, cb) => { (n.purseId ? purseStatuses : statuses).push(n); cb(null, appData); });
            c.on('receivedPayment', (n, customer, appData, cb) => { received.push(n); cb(null, appData); });
        });
        await within(10000, 'app connection', connected);
        const phone = new Simulator({ orgId, appId, apiKey });
        const asked = [];
        phone.on('checkoutPayment', (data, customer, appData, cb) => { asked.push(data); cb(); });
        phone.on('sendCustomerPayment', (data, customer, appData, cb) => { asked.push(data); cb(); });
        phone.on('sendChannelPayment', (data, customer, appData, cb) => { asked.push(data); cb(); });
        await within(10000, 'simulator connection', new Promise((resolve, reject) => {
            phone.on('connected', resolve);
            phone.on('error', reject);
            phone.connect({ host, port: Number(env('HODI_TLS_PORT')) });
        }));
        const until = (what, f) => within(8000, what, (async () => { while (!f()) await new Promise((r) => setTimeout(r, 25)); })());
        const kes = (amount) => ({ amount, currencyCode: 'KES' });

        // A customer pays 1,000 into the paybill: the purse is funded, the app hears receivedPayment.
        const paid = await phone.receivePayment('MPESA-SDK-1', '+254711000700', paybill, kes(1000), 'success');
        assert.strictEqual(paid.status, true, paid.description);
        await until('receivedPayment', () => received.length === 1);
        assert.strictEqual(received[0].purseId, purseId);
        assert.strictEqual(received[0].value.amount, 1000);

        const ada = new app.Customer({ number: '+254711000701', provider: 'cellular' });
        const adaId = (await ada.getState()).customerId;
        const savings = { customerId: adaId, walletId: 'savings' };
        const mobile = { customerNumber: { number: '+254711000701', provider: 'cellular' }, channelNumber: paybill };

        // purse → wallet, wallet → wallet, wallet → purse: settled at once.
        let r = await app.initiatePayment({ purseId }, savings, kes(400.5), 'top up');
        assert.strictEqual(r.status, 'success', r.description);
        assert.strictEqual(r.creditCustomerId, adaId);
        r = await app.initiatePayment(savings, { customerId: adaId, walletId: 'spending' }, kes(100));
        assert.strictEqual(r.status, 'success', r.description);
        r = await app.initiatePayment({ customerId: adaId, walletId: 'spending' }, { purseId }, kes(10));
        assert.strictEqual(r.status, 'success', r.description);
        // Refusals: no ledger change.
        r = await app.initiatePayment(savings, { purseId }, kes(5000));
        assert.strictEqual(r.status, 'insufficient_funds', r.description);
        r = await app.initiatePayment({ purseId: 'prs_unknown' }, savings, kes(1));
        assert.strictEqual(r.status, 'invalid_purse', r.description);
        r = await app.initiatePayment({ purseId }, savings, { amount: 1, currencyCode: 'USD' });
        assert.strictEqual(r.status, 'invalid_request', r.description);
        r = await app.initiatePayment(mobile, { customerNumber: { number: '+254711000702', provider: 'cellular' }, channelNumber: paybill }, kes(1));
        assert.strictEqual(r.status, 'not_supported', r.description);

        // Checkout confirmed, checkout declined.
        const yes = await app.initiatePayment(mobile, savings, kes(50));
        assert.strictEqual(yes.status, 'pending_confirmation', yes.description);
        await until('the checkout prompt', () => asked.some((a) => a.transactionId === yes.transactionId));
        assert.strictEqual((await phone.updatePaymentStatus(yes.transactionId, 'success')).status, true);
        await until('the confirmed status', () => statuses.some((s) => s.transactionId === yes.transactionId));
        assert.strictEqual(statuses.find((s) => s.transactionId === yes.transactionId).status, 'success');
        const no = await app.initiatePayment(mobile, savings, kes(70));
        await until('the second prompt', () => asked.some((a) => a.transactionId === no.transactionId));
        assert.strictEqual((await phone.updatePaymentStatus(no.transactionId, 'rejected')).status, true);
        await until('the declined status', () => statuses.some((s) => s.transactionId === no.transactionId));
        assert.strictEqual(statuses.find((s) => s.transactionId === no.transactionId).status, 'rejected');

        // Payouts: wallet → customer, purse → channel (a purse notification).
        const out = await app.initiatePayment(savings, mobile, kes(20));
        assert.strictEqual(out.status, 'queued', out.description);
        await until('the payout', () => statuses.some((s) => s.transactionId === out.transactionId));
        assert.strictEqual(statuses.find((s) => s.transactionId === out.transactionId).status, 'success');
        const bill = await app.initiatePayment({ purseId }, { channel: 'cellular', source: '525900', destination: '888880', account: 'INV-1', code: 0 }, kes(30));
        assert.strictEqual(bill.status, 'queued', bill.description);
        await until('the purse notification', () => purseStatuses.some((s) => s.transactionId === bill.transactionId));
        assert.strictEqual(purseStatuses[0].status, 'success');

        // The remaining pairs: purse → purse, customer → purse (checkout), purse → customer,
        // wallet → channel.
        const purse2 = env('HODI_PURSE2');
        r = await app.initiatePayment({ purseId }, { purseId: purse2 }, kes(5));
        assert.strictEqual(r.status, 'success', r.description);
        const intoPurse = await app.initiatePayment(mobile, { purseId }, kes(15));
        assert.strictEqual(intoPurse.status, 'pending_confirmation', intoPurse.description);
        await until('the purse checkout prompt', () => asked.some((a) => a.transactionId === intoPurse.transactionId));
        assert.strictEqual((await phone.updatePaymentStatus(intoPurse.transactionId, 'success')).status, true);
        const toMobile = await app.initiatePayment({ purseId }, mobile, kes(15));
        assert.strictEqual(toMobile.status, 'queued', toMobile.description);
        const walletBill = await app.initiatePayment({ customerId: adaId, walletId: 'spending' }, { channel: 'cellular', source: '525900', destination: '888881', account: 'INV-2', code: 0 }, kes(1));
        assert.strictEqual(walletBill.status, 'queued', walletBill.description);
        await until('the last payouts', () => [intoPurse, toMobile, walletBill].every((p) => statuses.some((s) => s.transactionId === p.transactionId && s.status === 'success')));

        // History: a replayed payment and its later status, imported once.
        for (let pass = 0; pass < 2; pass += 1) {
            const rp = await app.replayPayment('OLD-1', mobile, savings, 'pending_confirmation', kes(12), 'old', Math.floor(Date.now() / 1000) - 86400);
            assert.strictEqual(rp.status, true, rp.description);
        }
        const ru = await app.replayPaymentStatusUpdate({ number: '+254711000701', provider: 'cellular' }, 'OLD-1', 'success', Math.floor(Date.now() / 1000) - 86000);
        assert.strictEqual(ru.status, true, ru.description);

        // State: wallets (400.50 - 100 + 50 - 20 = 330.50 in savings; 100 - 10 - 1 = 89 in spending) and the log.
        const state = await ada.getState();
        const wallets = Object.fromEntries(state.paymentState.wallets);
        assert.strictEqual(wallets.savings.actual.amount, 330.5);
        assert.strictEqual(wallets.spending.available.amount, 89);
        const log = state.paymentState.transactionLogs;
        assert.ok(log.some((t) => t.transactionId === no.transactionId && t.status === 403), 'the declined checkout (REJECTED = 403)');
        const old = log.filter((t) => t.providerTransactionId && t.providerTransactionId.value === 'OLD-1');
        assert.strictEqual(old.length, 1, 'replayed once');
        assert.strictEqual(old[0].status, 300, 'SUCCESS after the replayed update');
        console.log(JSON.stringify({ ok: true, savings: wallets.savings.actual.amount, log: log.length }));
        phone.disconnect();
        await new Promise((r) => setTimeout(r, 300));
        app.disconnect();
    },

    // Secure WebSocket: rsocket-js's WebSocket client (what the SDK's web entry uses) over wss://,
    // carrying the SDK's own protobuf messages.
    async wss() {
        const { RSocketClient, BufferEncoders } = require('rsocket-core');
        const RSocketWebSocketClient = require('rsocket-websocket-client').default;
        const WebSocket = require('ws');
        const app = require('elarian/lib/utils/service/app_socket_pb');
        const common = require('elarian/lib/utils/service/common_model_pb');
        const { StringValue } = require('google-protobuf/google/protobuf/wrappers_pb');
        const setup = new app.AppConnectionMetadata().setOrgId(orgId).setAppId(appId)
            .setApiKey(new StringValue().setValue(apiKey)).setSimplexMode(true);
        const client = new RSocketClient({
            setup: {
                keepAlive: 1000,
                lifetime: 10000,
                dataMimeType: 'application/octet-stream',
                metadataMimeType: 'application/json',
                payload: { data: Buffer.from(setup.serializeBinary()), metadata: Buffer.from('{"agent":"hodi-tests"}') },
            },
            transport: new RSocketWebSocketClient({
                url: `wss://${host}:${env('HODI_WSS_PORT')}`,
                wsCreator: (url) => new WebSocket(url),
            }, BufferEncoders),
        });
        const socket = await within(10000, 'wss connection', new Promise((resolve, reject) => {
            client.connect().subscribe({ onComplete: resolve, onError: reject });
        }));
        const cmd = new app.AppToServerCommand().setGetCustomerState(new app.GetCustomerStateCommand().setCustomerNumber(
            new common.CustomerNumber().setNumber('+254700000004').setProvider(common.CustomerNumberProvider.CUSTOMER_NUMBER_PROVIDER_CELLULAR)));
        const reply = await within(5000, 'getState over wss', new Promise((resolve, reject) => {
            socket.requestResponse({ data: Buffer.from(cmd.serializeBinary()) }).subscribe({
                onComplete: (p) => resolve(app.AppToServerCommandReply.deserializeBinary(p.data).getGetCustomerState()),
                onError: reject,
            });
        }));
        assert.strictEqual(reply.getStatus(), true, reply.getDescription());
        assert.match(reply.getData().getCustomerId(), /^cst_/);
        console.log(JSON.stringify({ ok: true, customerId: reply.getData().getCustomerId() }));
        client.close();
    },
};

// A real SIP call (sipp, with RFC 4733 key presses from sip-tester's pcap) driven by an app written
// with the official SDK: a greeting and a prompt on answer, the key echoed, hang-up when done.
scenarios['sip-call'] = async () => {
    const { spawn } = require('child_process');
    const calls = [];
    let done;
    const finished = new Promise((resolve) => { done = resolve; });
    const { client, connected } = connectNode({ apiKey }, (c) => {
        c.on('voiceCall', (n, customer, appData, cb) => {
            const v = n.voice;
            calls.push({ status: v.status, direction: v.direction, digits: v.dtmfDigits, cause: v.hangupCause });
            if (v.status === 'answered') {
                cb([{ say: { text: 'Welcome to Hodi', voice: 'female' } }, { getDigits: { say: { text: 'Press 1 to pay', voice: 'male' }, numDigits: 1, timeout: 10, finishOnKey: '#' } }], appData);
            } else if (v.dtmfDigits) {
                cb([{ say: { text: `You pressed ${v.dtmfDigits}`, voice: 'female' } }], appData);
            } else {
                cb(null, appData);
                if (v.status === 'completed') done();
            }
        });
    });
    await within(10000, 'connected', connected);
    const sipp = spawn('sipp', ['-sf', env('HODI_SIPP_SCENARIO'), '-s', '+254711082000', env('HODI_SIP'), '-i', '127.0.0.1',
        '-mi', '127.0.0.1', '-p', env('HODI_SIPP_PORT'), '-mp', env('HODI_SIPP_MEDIA_PORT'), '-m', '1', '-timeout', '60s', '-nostdin'],
        { stdio: 'ignore' });
    const exited = new Promise((resolve) => sipp.on('exit', resolve));
    await within(60000, 'the call to complete', finished);
    const code = await within(30000, 'sipp to finish', exited);
    assert.strictEqual(code, 0, 'sipp saw the call fail');
    assert.strictEqual(calls[0].status, 'answered', JSON.stringify(calls));
    assert.ok(calls.some((c) => c.digits === '1'), `the key press reached the app: ${JSON.stringify(calls)}`);
    console.log(JSON.stringify({ ok: true, calls }));
    client.disconnect();
};

const name = process.argv[2];
if (!scenarios[name]) {
    console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(', ')}`);
    process.exit(2);
}
scenarios[name]().then(() => process.exit(0), (err) => {
    console.error(`scenario ${name} failed: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
});
