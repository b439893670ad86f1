// Notification delivery as real Elarian apps see it: the official JS SDK (npm elarian@0.2.25) with
// handlers that never call back, call back late, or at once, against a live Hodi.
//
// Usage: node notify_e2e.js <scenario>. Reads HODI_HOST, HODI_TLS_PORT, HODI_ORG, HODI_APP, HODI_KEY
// (NODE_EXTRA_CA_CERTS must name Hodi's certificate). Prints one JSON line with what it observed
// and exits 0; a failed expectation exits 1 with the reason.
//
// The SDK answers every notification itself 5 s after calling a handler that has not called back
// (an empty reply handing the app data back); these scenarios lean on that.
'use strict';

const assert = require('assert');
const { Elarian, Simulator } = require('elarian');

const { env, sleep, within, until } = require('./harness');

const host = env('HODI_HOST');
const port = Number(env('HODI_TLS_PORT'));
const orgId = env('HODI_ORG');
const appId = env('HODI_APP');
const apiKey = env('HODI_KEY');
const sms = { number: '21356', channel: 'sms' };


function connected(client) {
    return within(10000, 'connection', new Promise((resolve, reject) => {
        client.on('connected', () => resolve(client));
        client.on('error', (e) => reject(e instanceof Error ? e : new Error(String(e && e.message ? e.message : e))));
        client.connect({ host, port });
    }));
}

async function app(register) {
    const client = new Elarian({ orgId, appId, apiKey });
    register(client);
    return connected(client);
}

async function phone() {
    const p = new Simulator({ orgId, appId, apiKey });
    p.on('sendMessage', (data, customer, appData, cb) => cb());
    return connected(p);
}

// Counts each notification by a key, with when it arrived.
function tally() {
    const seen = new Map();
    return {
        seen,
        note(key) {
            const e = seen.get(key) || { count: 0, at: [] };
            e.count += 1;
            e.at.push(Date.now());
            seen.set(key, e);
        },
        duplicates() { return [...seen].filter(([, e]) => e.count > 1).map(([k, e]) => `${k}×${e.count}`); },
    };
}

const scenarios = {
    // Handlers that never call back: 20 reminders and 20 inbound SMS for one customer, each
    // received exactly once, soon after it is due.
    async 'never-callback'() {
        const got = tally();
        const dueAt = new Map();
        const client = await app((c) => {
            c.on('reminder', (n) => got.note(`reminder ${n.reminder.key}`));
            c.on('receivedSms', (n) => got.note(`sms ${n.text}`));
        });
        const sim = await phone();
        const number = '+254711000300';
        const customer = new client.Customer({ number, provider: 'cellular' });
        const remindAt = Math.ceil(Date.now() / 1000) + 3;
        for (let i = 0; i < 20; i += 1) {
            const r = await customer.addReminder({ key: `r${i}`, remindAt, payload: `p${i}` });
            assert.strictEqual(r.status, true, r.description);
            dueAt.set(`reminder r${i}`, remindAt * 1000);
        }
        for (let i = 0; i < 20; i += 1) {
            dueAt.set(`sms m${i}`, Date.now());
            const r = await sim.receiveMessage(number, sms, `sms-${i}`, [{ text: `m${i}` }]);
            assert.strictEqual(r.status, true, r.description);
        }
        await until(30000, 'all 40 notifications', () => got.seen.size === 40);
        // Past the SDK's 5 s auto-answers of the last ones: a redelivery would show by now only
        // if Hodi gave up before the SDK answered.
        await sleep(6500);
        assert.deepStrictEqual(got.duplicates(), [], 'each notification once');
        const lateness = [...got.seen].map(([k, e]) => e.at[0] - dueAt.get(k));
        console.log(JSON.stringify({ ok: true, received: got.seen.size, maxLatenessMs: Math.max(...lateness) }));
        client.disconnect();
        sim.disconnect();
    },

    // A handler that calls back after 7 s: the SDK has answered at 5 s already; each reminder
    // arrives once and nothing comes again.
    async 'late-callback'() {
        const got = tally();
        const client = await app((c) => {
            c.on('reminder', (n, customer, appData, cb) => {
                got.note(n.reminder.key);
                setTimeout(() => cb(null, { late: n.reminder.key }), 7000);
            });
        });
        const customer = new client.Customer({ number: '+254711000301', provider: 'cellular' });
        const remindAt = Math.ceil(Date.now() / 1000) + 1;
        for (const key of ['a', 'b', 'c']) {
            await customer.addReminder({ key, remindAt, payload: key });
        }
        await until(15000, 'three reminders', () => got.seen.size === 3);
        await sleep(8000);
        assert.deepStrictEqual(got.duplicates(), [], 'each reminder once');
        console.log(JSON.stringify({ ok: true, received: got.seen.size }));
        client.disconnect();
    },

    // A handler that answers at once: 30 SMS from one customer reach it in the order sent, each once.
    async 'at-once'() {
        const order = [];
        const client = await app((c) => {
            c.on('receivedSms', (n, customer, appData, cb) => {
                order.push(n.text);
                cb(null, { last: n.text });
            });
        });
        const sim = await phone();
        const number = '+254711000302';
        const sent = [];
        for (let i = 0; i < 30; i += 1) {
            sent.push(`n${i}`);
            await sim.receiveMessage(number, sms, `o-${i}`, [{ text: `n${i}` }]);
        }
        await until(15000, '30 SMS', () => order.length >= 30);
        await sleep(500);
        assert.deepStrictEqual(order, sent, 'outbox order');
        const state = await new client.Customer({ number, provider: 'cellular' }).getState();
        console.log(JSON.stringify({ ok: true, received: order.length, customerId: state.customerId }));
        client.disconnect();
        sim.disconnect();
    },

    // Never calling back, three SMS: how far apart they arrive shows the window (with 1, each
    // waits for the SDK's 5 s answer to the one before).
    async spacing() {
        const at = [];
        const client = await app((c) => { c.on('receivedSms', () => at.push(Date.now())); });
        const sim = await phone();
        const number = `+2547110004${String(Date.now() % 100).padStart(2, '0')}`;
        for (let i = 0; i < 3; i += 1) {
            await sim.receiveMessage(number, sms, `s-${i}`, [{ text: `s${i}` }]);
        }
        await until(30000, 'three SMS', () => at.length >= 3);
        const gaps = [at[1] - at[0], at[2] - at[1]];
        console.log(JSON.stringify({ ok: true, gapsMs: gaps, spanMs: at[2] - at[0] }));
        await sleep(5500);
        client.disconnect();
        sim.disconnect();
    },
};

const name = process.argv[2];
if (!scenarios[name]) {
    console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(', ')}`);
    process.exit(2);
}
scenarios[name]()
    .then(() => setTimeout(() => process.exit(0), 200))
    .catch((e) => { console.error(e && e.stack ? e.stack : e); process.exit(1); });
