// End-to-end scenarios driven by the official Elarian JS SDK (npm elarian@0.2.25) against a live Hodi.
//
// Usage: node sdk_e2e.js <scenario>. Reads HODI_HOST, HODI_TLS_PORT, HODI_WS_PORT, HODI_ORG, HODI_APP,
// HODI_KEY from the environment (NODE_EXTRA_CA_CERTS must name Hodi's certificate). Prints one JSON
// line with what it observed and exits 0; any failed expectation exits 1 with the reason.
'use strict';

const assert = require('assert');

const env = (name) => {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set`);
    return v;
};
const host = env('HODI_HOST');
const orgId = env('HODI_ORG');
const appId = env('HODI_APP');
const apiKey = env('HODI_KEY');

const deadline = (ms, what) => new Promise((_, reject) => {
    setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms).unref();
});
const within = (ms, what, promise) => Promise.race([promise, deadline(ms, what)]);

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

        await customer.addReminder({ key: 'second', remindAt: now + 1, payload: 'again' });
        const second = await within(8000, 'second reminder', nextReminder());
        assert.strictEqual(second.notification.reminder.key, 'second');
        assert.deepStrictEqual(second.appData, { visits: 1 }, 'the reply to the first reminder must have been stored');
        second.callback(null, { visits: 2 });

        await customer.addReminder({ key: 'cancelled', remindAt: now + 2, payload: 'never' });
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
        assert.match(String(err.message), /invalid API key/);
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

const name = process.argv[2];
if (!scenarios[name]) {
    console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(', ')}`);
    process.exit(2);
}
scenarios[name]().then(() => process.exit(0), (err) => {
    console.error(`scenario ${name} failed: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
});
