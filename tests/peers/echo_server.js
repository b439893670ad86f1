// The Node peer for the benchmark: an RSocket echo server on npm rsocket-core/rsocket-tcp-server
// 0.0.27, the stack the Elarian SDK is built on. Prints "listening 127.0.0.1:<port>".
'use strict';

const { RSocketServer, BufferEncoders } = require('rsocket-core');
const RSocketTCPServer = require('rsocket-tcp-server').default;
const { Single } = require('rsocket-flowable');

const net = require('net');

const port = Number(process.argv[2] || 0);
// serverFactory lets us see the bound port, which rsocket-tcp-server does not expose.
const serverFactory = (onConnection) => {
    const s = net.createServer(onConnection);
    s.on('listening', () => console.log(`listening 127.0.0.1:${s.address().port}`));
    return s;
};
const transport = new RSocketTCPServer({ host: '127.0.0.1', port, serverFactory }, BufferEncoders);
const server = new RSocketServer({
    getRequestHandler: () => ({
        requestResponse: (payload) => Single.of({ data: payload.data, metadata: payload.metadata }),
    }),
    transport,
});
server.start();
