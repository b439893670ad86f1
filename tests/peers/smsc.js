// A scriptable SMSC for Hodi's SMPP tests, built on the npm `smpp` package in server mode.
//
// As a module: startSmsc({ port, systemId, password }) returns an object that accepts binds,
// answers submit_sm with message ids m1, m2, …, reassembles concatenated (UDH) messages, and can
// send delivery receipts and mobile-originated messages, throttle, drop its links, and stop or
// start listening. Everything it sees is kept in `events` and emitted as 'event'.
//
// As a program: `node smsc.js <port> <system_id> <password>` prints each event as one JSON line
// on stdout and reads commands as JSON lines on stdin ({"cmd":"receipt","id":"m1"}, {"cmd":"mo",
// "from":"254700000009","to":"21356","text":"hi"}, {"cmd":"throttle","n":3}, {"cmd":"drop"},
// {"cmd":"stop"}, {"cmd":"start"}).
'use strict';

const smpp = require('smpp');
const { EventEmitter } = require('events');

function startSmsc({ port, systemId, password }) {
    const smsc = new EventEmitter();
    smsc.events = [];
    smsc.sessions = new Set();
    smsc.throttle = 0;
    let nextId = 1;
    const partial = new Map(); // concatenation reference -> parts

    const emit = (event) => {
        smsc.events.push(event);
        smsc.emit('event', event);
    };

    const server = smpp.createServer((session) => {
        smsc.sessions.add(session);
        session.on('close', () => { smsc.sessions.delete(session); emit({ event: 'closed' }); });
        session.on('error', () => {});
        session.on('bind_transceiver', (pdu) => {
            if (pdu.system_id !== systemId || pdu.password !== password) {
                emit({ event: 'bind_refused', system_id: pdu.system_id });
                session.send(pdu.response({ command_status: smpp.ESME_RINVPASWD }));
                session.close();
                return;
            }
            session.bound = true;
            emit({ event: 'bound', system_id: pdu.system_id, interface_version: pdu.interface_version });
            session.send(pdu.response({ system_id: 'hodi-test-smsc' }));
        });
        session.on('enquire_link', (pdu) => { emit({ event: 'enquire_link' }); session.send(pdu.response()); });
        session.on('unbind', (pdu) => { emit({ event: 'unbind' }); session.send(pdu.response()); session.close(); });
        session.on('submit_sm', (pdu) => {
            if (smsc.throttle > 0) {
                smsc.throttle -= 1;
                emit({ event: 'throttled' });
                session.send(pdu.response({ command_status: smpp.ESME_RTHROTTLED }));
                return;
            }
            const id = `m${nextId++}`;
            const sm = pdu.short_message || {};
            const text = typeof sm.message === 'string' ? sm.message : Buffer.from(sm.message || []).toString('utf8');
            let concat = null;
            for (const udh of sm.udh || []) {
                if (udh[0] === 0x00) concat = { ref: udh[2], total: udh[3], seq: udh[4] };
                if (udh[0] === 0x08) concat = { ref: udh.readUInt16BE(2), total: udh[4], seq: udh[5] };
            }
            const submit = {
                event: 'submit_sm', id, source: pdu.source_addr, destination: pdu.destination_addr,
                data_coding: pdu.data_coding, registered_delivery: pdu.registered_delivery, concat, text,
            };
            emit(submit);
            session.send(pdu.response({ message_id: id }));
            if (!concat) {
                emit({ event: 'message', source: pdu.source_addr, destination: pdu.destination_addr, text, ids: [id], data_coding: pdu.data_coding });
                return;
            }
            const key = `${pdu.destination_addr}/${concat.ref}`;
            const parts = partial.get(key) || [];
            parts.push({ seq: concat.seq, text, id });
            partial.set(key, parts);
            if (parts.length === concat.total) {
                partial.delete(key);
                parts.sort((a, b) => a.seq - b.seq);
                emit({
                    event: 'message', source: pdu.source_addr, destination: pdu.destination_addr,
                    text: parts.map((p) => p.text).join(''), ids: parts.map((p) => p.id), data_coding: pdu.data_coding,
                });
            }
        });
    });
    server.on('error', (e) => emit({ event: 'error', error: String(e) }));

    const bound = () => [...smsc.sessions].filter((s) => s.bound);
    smsc.listen = () => new Promise((resolve) => server.listen(port, '127.0.0.1', () => {
        emit({ event: 'listening', port: server.address().port });
        resolve(server.address().port);
    }));
    smsc.deliver = (fields) => {
        const sessions = bound();
        if (!sessions.length) throw new Error('no bound session to deliver to');
        sessions[0].deliver_sm(fields, (resp) => emit({ event: 'deliver_sm_resp', status: resp.command_status }));
    };
    smsc.receipt = (id, stat = 'DELIVRD') => smsc.deliver({
        source_addr: '254700000000', destination_addr: '21356', esm_class: 0x04,
        short_message: `id:${id} sub:001 dlvrd:001 submit date:2612061200 done date:2612061201 stat:${stat} err:000 text:`,
    });
    // data_coding 0 (the SMSC default alphabet, GSM-7) unless given, e.g. 8 for UCS-2.
    smsc.mo = (from, to, text, dataCoding = 0) => smsc.deliver({ source_addr: from, destination_addr: to, data_coding: dataCoding, short_message: text });
    // A customer's long message in parts, each with a UDH (8-bit reference `ref`), sent last part
    // first and round the bound sessions (an SMSC may deliver parts on any bind).
    smsc.moParts = (from, to, parts, dataCoding = 0, ref = 7) => {
        const sessions = bound();
        if (!sessions.length) throw new Error('no bound session to deliver to');
        parts.map((text, i) => ({ text, seq: i + 1 })).reverse().forEach((part, k) => {
            const udh = Buffer.from([5, 0x00, 3, ref, parts.length, part.seq]);
            sessions[k % sessions.length].deliver_sm(
                { source_addr: from, destination_addr: to, data_coding: dataCoding, esm_class: 0x40, short_message: { udh, message: part.text } },
                (resp) => emit({ event: 'deliver_sm_resp', status: resp.command_status }),
            );
        });
    };
    // Ends every link (as a crashed SMSC would) and stops listening; `listen` starts again.
    smsc.stop = () => new Promise((resolve) => {
        for (const s of smsc.sessions) s.socket.destroy();
        server.close(() => resolve());
    });
    smsc.drop = () => { for (const s of smsc.sessions) s.socket.destroy(); };
    return smsc;
}

module.exports = { startSmsc };

if (require.main === module) {
    const [port, systemId, password] = process.argv.slice(2);
    const smsc = startSmsc({ port: Number(port), systemId, password });
    smsc.on('event', (e) => process.stdout.write(`${JSON.stringify(e)}\n`));
    smsc.listen();
    let buffered = '';
    process.stdin.on('data', async (chunk) => {
        buffered += chunk;
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            if (!line.trim()) continue;
            const c = JSON.parse(line);
            try {
                if (c.cmd === 'receipt') smsc.receipt(c.id, c.stat);
                else if (c.cmd === 'mo') smsc.mo(c.from, c.to, c.text, c.data_coding);
                else if (c.cmd === 'throttle') smsc.throttle = c.n;
                else if (c.cmd === 'drop') smsc.drop();
                else if (c.cmd === 'stop') await smsc.stop();
                else if (c.cmd === 'start') await smsc.listen();
                process.stdout.write(`${JSON.stringify({ event: 'done', cmd: c.cmd })}\n`);
            } catch (e) {
                process.stdout.write(`${JSON.stringify({ event: 'failed', cmd: c.cmd, error: String(e) })}\n`);
            }
        }
    });
    process.stdin.on('end', () => process.exit(0));
}
