// The official Elarian JS SDK (npm elarian@0.2.25) across Hodi nodes: the app (Elarian) connects to
// one node (HODI_TLS_PORT), the customers' phone (Simulator) to another (HODI_PHONE_TLS_PORT). SMS
// in and the app's reply out, a USSD menu, a checkout the phone confirms, a reminder, and an SMS by
// tag to the HODI_TAGGED customers tagged campaign=dec (tagged by the test beforehand): every one
// reaches the phone and comes back to the app as delivered.
//
// Prints one JSON line with what it observed and exits 0; a failed expectation exits 1.
'use strict';

const assert = require('assert');

const { env, within, until, sleep } = require('./harness');

const host = env('HODI_HOST');
const orgId = env('HODI_ORG');
const appId = env('HODI_APP');
const apiKey = env('HODI_KEY');

function connected(client, port) {
    return new Promise((resolve, reject) => {
        client.on('connected', () => resolve(client));
        client.on('error', (err) => reject(err instanceof Error ? err : new Error(String(err && err.message ? err.message : err))));
        client.connect({ host, port: Number(port) });
    });
}

async function main() {
    const { Elarian, Simulator } = require('elarian');
    const total = Number(env('HODI_TAGGED'));
    const sms = { number: '21356', channel: 'sms' };
    const ussd = { number: '*384#', channel: 'ussd' };
    const paybill = { number: '525900', channel: 'cellular' };

    // The app, on node 1.
    const reminders = [];
    const payments = [];
    let delivered = 0;
    const app = new Elarian({ orgId, appId, apiKey });
    app.on('receivedSms', (n, customer, appData, cb) => cb({ body: { text: `got ${n.text}` } }, appData));
    app.on('ussdSession', (n, customer, appData, cb) => {
        const step = (appData && appData.step) || 0;
        if (step === 0) cb({ text: 'Dec offers\n1. Data\n2. Quit', isTerminal: false }, { step: 1 });
        else cb({ text: `Chose ${n.input.text}`, isTerminal: true }, { step: 0 });
    });
    app.on('reminder', (n, customer, appData, cb) => { reminders.push(n); cb(null, appData); });
    app.on('paymentStatus', (n, customer, appData, cb) => { payments.push(n); cb(null, appData); });
    app.on('messageStatus', (n, customer, appData, cb) => { if (n.status === 'delivered') delivered += 1; cb(null, appData); });
    await within(10000, 'the app connecting to node 1', connected(app, env('HODI_TLS_PORT')));

    // The phone, on node 2.
    const inbox = [];
    const reached = new Set();
    const checkouts = [];
    const phone = new Simulator({ orgId, appId, apiKey });
    phone.on('sendMessage', (data, customer, appData, cb) => {
        if (data.message.body.text === 'December offers') reached.add(data.customerNumber.number);
        else inbox.push(data);
        cb();
    });
    phone.on('checkoutPayment', (data, customer, appData, cb) => { checkouts.push(data); cb(); });
    await within(10000, 'the phone connecting to node 2', connected(phone, env('HODI_PHONE_TLS_PORT')));
    // Node 1 learns of node 2's simulator socket from node 2's next heartbeat.
    await sleep(1500);

    // SMS in on node 2, answered by the app on node 1, the reply back at the phone on node 2.
    const inbound = await phone.receiveMessage('+254711300001', sms, 'sms-x', [{ text: 'hello' }]);
    assert.strictEqual(inbound.status, true, inbound.description);
    await until(10000, 'the reply SMS at the phone', () => inbox.length >= 1);
    assert.strictEqual(inbox[0].message.body.text, 'got hello');

    // A USSD menu: each input crosses to node 1 and the menu comes back at once.
    const dial = (text) => phone.receiveMessage('+254711300001', ussd, 'ussd-x', [{ ussd: { status: 'active', text } }]);
    const m1 = await within(10000, 'the first menu', dial(''));
    assert.strictEqual(m1.message.body.ussd.text, 'Dec offers\n1. Data\n2. Quit');
    const m2 = await within(10000, 'the second menu', dial('1'));
    assert.strictEqual(m2.message.body.ussd.text, 'Chose 1');
    assert.strictEqual(m2.message.body.ussd.isTerminal, true);

    // A checkout: the prompt reaches the phone on node 2, its confirmation the app on node 1.
    const ada = new app.Customer({ number: '+254711300002', provider: 'cellular' });
    const adaId = (await ada.getState()).customerId;
    const mobile = { customerNumber: { number: '+254711300002', provider: 'cellular' }, channelNumber: paybill };
    const checkout = await app.initiatePayment(mobile, { customerId: adaId, walletId: 'savings' }, { amount: 75, currencyCode: 'KES' });
    assert.strictEqual(checkout.status, 'pending_confirmation', checkout.description);
    await until(10000, 'the checkout prompt at the phone', () => checkouts.some((c) => c.transactionId === checkout.transactionId));
    assert.strictEqual((await phone.updatePaymentStatus(checkout.transactionId, 'success')).status, true);
    await until(10000, 'the confirmed payment at the app', () => payments.some((p) => p.transactionId === checkout.transactionId));
    assert.strictEqual(payments.find((p) => p.transactionId === checkout.transactionId).status, 'success');
    const wallets = Object.fromEntries((await ada.getState()).paymentState.wallets);
    assert.strictEqual(wallets.savings.actual.amount, 75, JSON.stringify(wallets));

    // A reminder, fired by whichever node's scheduler, delivered by node 1.
    await ada.addReminder({ key: 'pay-day', remindAt: Math.floor(Date.now() / 1000) + 1, payload: 'dec' });
    await until(15000, 'the reminder', () => reminders.some((r) => r.reminder.key === 'pay-day'));

    // By tag to every tagged customer: at the phone on node 2, delivered statuses at the app.
    const started = Date.now();
    const work = await app.sendMessageByTag({ key: 'campaign', value: 'dec' }, sms, { body: { text: 'December offers' } });
    assert.strictEqual(work.status, true, work.description);
    await until(180000, `${total} messages at the phone`, () => reached.size >= total);
    const sendMs = Date.now() - started;
    await until(180000, `${total} delivered statuses at the app`, () => delivered >= total);
    console.log(JSON.stringify({ ok: true, reached: reached.size, delivered, sendMs, reminders: reminders.length }));
    phone.disconnect();
    await sleep(300);
    app.disconnect();
}

main().then(() => process.exit(0), (err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exit(1);
});
