// A generic RSocket peer (npm rsocket-core 0.0.27 + rsocket-tcp-client) driving Hodi's rsocket layer
// through the `rsocket-echo` server. Usage: node rsocket_peer.js <scenario>; reads ECHO_PORT.
// Prints one JSON line and exits 0, or exits 1 with the failed expectation.
'use strict';

const assert = require('assert');
const { RSocketClient, BufferEncoders } = require('rsocket-core');
const RSocketTcpClient = require('rsocket-tcp-client').default;

const port = Number(process.env.ECHO_PORT);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function connect({ keepAlive = 1000, lifetime = 30000 } = {}) {
    const transport = new RSocketTcpClient({ host: '127.0.0.1', port }, BufferEncoders);
    const statuses = [];
    transport.connectionStatus().subscribe({
        onNext: (s) => statuses.push(s),
        onSubscribe: (sub) => sub.request(1000),
    });
    const client = new RSocketClient({
        setup: { keepAlive, lifetime, dataMimeType: 'application/octet-stream', metadataMimeType: 'application/octet-stream' },
        transport,
    });
    return new Promise((resolve, reject) => {
        client.connect().subscribe({ onComplete: (socket) => resolve({ client, socket, statuses }), onError: reject });
    });
}

const rr = (socket, text) => new Promise((resolve, reject) => {
    socket.requestResponse({ data: Buffer.from(text) }).subscribe({
        onComplete: (p) => resolve(p.data.toString()),
        onError: reject,
    });
});

async function waitFor(what, ms, check) {
    const until = Date.now() + ms;
    while (Date.now() < until) {
        if (await check()) return;
        await sleep(25);
    }
    throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

const scenarios = {
    async 'request-response'() {
        const { client, socket } = await connect();
        assert.strictEqual(await rr(socket, 'hello'), 'hello');
        const many = await Promise.all(Array.from({ length: 50 }, (_, i) => rr(socket, `m${i}`)));
        many.forEach((v, i) => assert.strictEqual(v, `m${i}`));
        client.close();
        return { echoed: 51 };
    },

    async 'request-n'() {
        const { client, socket } = await connect();
        const got = [];
        let sub;
        let completed = false;
        socket.requestStream({ data: Buffer.from('100') }).subscribe({
            onSubscribe: (s) => { sub = s; s.request(5); },
            onNext: (p) => got.push(p.data.toString()),
            onComplete: () => { completed = true; },
            onError: (e) => { throw e; },
        });
        await waitFor('5 items', 3000, () => got.length >= 5);
        await sleep(300);
        assert.strictEqual(got.length, 5, 'the server must not send past the granted credit');
        sub.request(3);
        await waitFor('8 items', 3000, () => got.length >= 8);
        await sleep(300);
        assert.strictEqual(got.length, 8);
        assert.deepStrictEqual(got.slice(0, 3), ['item-0', 'item-1', 'item-2']);
        sub.request(1000);
        await waitFor('completion', 3000, () => completed);
        assert.strictEqual(got.length, 100);
        client.close();
        return { items: got.length };
    },

    async cancel() {
        const { client, socket } = await connect();
        const got = [];
        let sub;
        socket.requestStream({ data: Buffer.from('forever') }).subscribe({
            onSubscribe: (s) => { sub = s; s.request(2); },
            onNext: (p) => got.push(p.data.toString()),
            onError: (e) => { throw e; },
        });
        await waitFor('2 items', 3000, () => got.length >= 2);
        assert.strictEqual(await rr(socket, 'active-streams'), '1');
        sub.cancel();
        await waitFor('the producer to stop', 3000, async () => (await rr(socket, 'active-streams')) === '0');
        client.close();
        return { items: got.length };
    },

    async 'keepalive-timeout'() {
        // Announce a 600 ms lifetime but keep alive only every 60 s: the server must give up on us.
        const started = Date.now();
        const { statuses } = await connect({ keepAlive: 60000, lifetime: 600 });
        await waitFor('the server to close the connection', 5000, () => statuses.some((s) => s.kind === 'ERROR' || s.kind === 'CLOSED'));
        const elapsed = Date.now() - started;
        const err = statuses.find((s) => s.error);
        assert.ok(elapsed >= 500, `closed after only ${elapsed} ms`);
        return { closedAfterMs: elapsed, error: err ? String(err.error.message) : null };
    },
};

const name = process.argv[2];
if (!scenarios[name]) {
    console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(', ')}`);
    process.exit(2);
}
scenarios[name]().then((result) => {
    console.log(JSON.stringify({ ok: true, ...result }));
    process.exit(0);
}, (err) => {
    console.error(`scenario ${name} failed: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
});
