// Writes the commands the official Elarian SDK (npm elarian 0.2.25) encodes, one file each, as
// the seed corpus of the app_command and simulator_command fuzz targets. The SDK's socket is
// replaced by one that keeps each request payload instead of sending it: no server is needed.
//
//   NODE_PATH=tests/peers/node_modules node fuzz/seeds/capture_commands.js fuzz/seeds
'use strict';
const fs = require('fs');
const path = require('path');
const { Elarian, Simulator } = require('elarian');

const out = process.argv[2] || 'fuzz/seeds';
let count = 0;
function capturing(client, dir) {
    fs.mkdirSync(path.join(out, dir), { recursive: true });
    client._socket = {
        requestResponse: ({ data }) => {
            count += 1;
            fs.writeFileSync(path.join(out, dir, `sdk-${String(count).padStart(3, '0')}`), data);
            return { subscribe: () => {} };
        },
    };
    return client;
}
const config = { orgId: 'org', appId: 'app', apiKey: 'key' };
const app = capturing(new Elarian(config), 'app_command');
const sim = capturing(new Simulator({ ...config, isSimulator: true }), 'simulator_command');
const quiet = (p) => Promise.resolve(p).catch(() => {});

const customer = new app.Customer({ number: '+254711000001', provider: 'cellular' });
const byId = new app.Customer({ id: 'el_cst_1' });
const sms = { number: '21356', channel: 'sms' };
const voice = { number: '+254711082000', channel: 'voice' };
const later = Math.floor(Date.now() / 1000) + 60;
const calls = [
    () => app.generateAuthToken(),
    () => customer.getState(),
    () => byId.getState(),
    () => customer.adoptState(byId),
    () => customer.updateTags([{ key: 'plan', value: 'gold', expiresAt: later }]),
    () => customer.deleteTags(['plan']),
    () => customer.updateSecondaryIds([{ key: 'email', value: 'a@b.c', expiresAt: later }]),
    () => customer.deleteSecondaryIds([{ key: 'email', value: 'a@b.c' }]),
    () => customer.updateMetadata({ name: 'Ann', raw: Buffer.from([1, 2, 3]) }),
    () => customer.deleteMetadata(['name']),
    () => customer.updateAppData({ state: 'start' }),
    () => customer.leaseAppData(),
    () => customer.deleteAppData(),
    () => customer.addReminder({ key: 'pay', remindAt: later, interval: 60, payload: 'p' }),
    () => customer.cancelReminder('pay'),
    () => customer.updateActivity({ number: 'web', channel: 'web' }, { sessionId: 's1', key: 'login', properties: { a: '1' } }),
    () => customer.sendMessage(sms, { body: { text: 'hello' } }),
    () => customer.sendMessage(voice, { body: { voice: [{ say: { text: 'hi', voice: 'female' } }, { getDigits: { say: { text: 'press' }, timeout: 5, finishOnKey: '#', numDigits: 1 } }, { dial: { customerNumbers: [{ number: '+254711000002', provider: 'cellular' }], record: true } }] } }),
    () => customer.replyToMessage('msg_1', { body: { text: 'reply' } }),
    () => customer.updateMessagingConsent(sms, 'allow'),
    () => app.sendMessageByTag({ key: 'plan', value: 'gold' }, sms, { body: { text: 'all' } }),
    () => app.addCustomerReminderByTag({ key: 'plan', value: 'gold' }, { key: 'k', remindAt: later, payload: 'p' }),
    () => app.cancelCustomerReminderByTag({ key: 'plan', value: 'gold' }, 'k'),
    () => app.initiatePayment({ customer: { customerNumber: { number: '+254711000001', provider: 'cellular' }, channelNumber: { number: '525900', channel: 'cellular' } } }, { purse: { purseId: 'prs_1' } }, { amount: 10, currencyCode: 'KES' }, 'rent'),
    () => app.replayPaymentStatusUpdate({ number: '+254711000001', provider: 'cellular' }, 'txn_1', 'success', later),
    () => app.replayReceivedMessage({ number: '+254711000001', provider: 'cellular' }, sms, { messageId: 'p1', sessionId: 's', inReplyTo: 'x', parts: [{ text: 'hi' }], receivedAt: later }),
    () => app.replayMessagingConsentUpdate({ number: '+254711000001', provider: 'cellular' }, sms, 'block', later),
    () => sim.receiveMessage('+254711000001', sms, 'ses_1', [{ text: 'hi' }]),
    () => sim.receiveMessage('+254711000001', { number: '*384#', channel: 'ussd' }, 'ses_2', [{ ussd: '1' }]),
    () => sim.receivePayment('txn_2', { number: '+254711000001', provider: 'cellular' }, { number: '525900', channel: 'cellular' }, { amount: 5, currencyCode: 'KES' }, 'success'),
    () => sim.updatePaymentStatus('txn_2', 'failed'),
];
for (const call of calls) {
    try {
        quiet(call());
    } catch (e) {
        // A call the SDK refuses before encoding adds no seed; say so, as a check on this list.
        console.error(`the SDK refused: ${e.message.split('\n')[0]}`);
    }
}
setTimeout(() => console.log(`${count} commands written under ${out}`), 200);
