// An RSocket client over a browser WebSocket, enough for a simulator socket: SETUP, our
// REQUEST_RESPONSE commands and their PAYLOAD/ERROR answers, the server's REQUEST_RESPONSE
// notifications (answered by a handler), and KEEPALIVE both ways. One RSocket frame per binary
// WebSocket message, as Hodi's WebSocket listener (and rsocket-websocket-client) frame them.

const T = { SETUP: 0x01, KEEPALIVE: 0x03, REQUEST_RESPONSE: 0x04, REQUEST_N: 0x08, CANCEL: 0x09, PAYLOAD: 0x0a, ERROR: 0x0b };
const F = { METADATA: 0x100, RESPOND: 0x80, FOLLOWS: 0x80, COMPLETE: 0x40, NEXT: 0x20 };
const KEEPALIVE_MS = 20000;
const MAX_LIFETIME_MS = 90000;
const REQUEST_TIMEOUT_MS = 15000;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

function frame(streamId, type, flags, parts) {
  const size = 6 + parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint32(0, streamId);
  v.setUint16(4, (type << 10) | flags);
  let at = 6;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function u24(n) { return Uint8Array.of((n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff); }

/** A frame's metadata and data, past the header and `skip` bytes of type-specific fields. */
function payloadOf(bytes, flags, skip) {
  let at = 6 + skip;
  let metadata = null;
  if (flags & F.METADATA) {
    const len = (bytes[at] << 16) | (bytes[at + 1] << 8) | bytes[at + 2];
    metadata = bytes.subarray(at + 3, at + 3 + len);
    at += 3 + len;
  }
  return { metadata, data: bytes.subarray(at) };
}

export class RSocketError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

/**
 * Connects to `url` and sends SETUP with `setupData` (bytes) and JSON `setupMetadata`.
 * `onRequest(data, metadata)` answers the server's requests with bytes (or a promise of them);
 * `onClose(reason)` is told once when the socket ends.
 */
export function connect(url, { setupData, setupMetadata, onRequest, onClose }) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const pending = new Map();
    let nextId = 1;
    let closed = false;
    let keepalive = null;

    const close = (reason) => {
      if (closed) return;
      closed = true;
      clearInterval(keepalive);
      for (const { fail } of pending.values()) fail(new RSocketError(0, reason));
      pending.clear();
      try { ws.close(); } catch { /* already closing */ }
      onClose?.(reason);
    };
    const send = (bytes) => { if (!closed && ws.readyState === WebSocket.OPEN) ws.send(bytes); };

    ws.onopen = () => {
      const header = new Uint8Array(12);
      const v = new DataView(header.buffer);
      v.setUint16(0, 1); // version 1.0
      v.setUint16(2, 0);
      v.setUint32(4, KEEPALIVE_MS);
      v.setUint32(8, MAX_LIFETIME_MS);
      const mime = (s) => { const b = utf8.encode(s); return Uint8Array.of(b.length, ...b); };
      const meta = utf8.encode(JSON.stringify(setupMetadata ?? {}));
      send(frame(0, T.SETUP, F.METADATA, [header, mime("application/json"), mime("application/octet-stream"), u24(meta.length), meta, setupData]));
      keepalive = setInterval(() => send(frame(0, T.KEEPALIVE, F.RESPOND, [new Uint8Array(8)])), KEEPALIVE_MS);
      // A refused SETUP comes back as ERROR on stream 0 at once; give it a moment before saying up.
      setTimeout(() => { if (!closed) resolve(socket); }, 300);
    };
    ws.onerror = () => { reject(new Error(`cannot reach ${url}`)); close("socket error"); };
    ws.onclose = (e) => { reject(new Error(`closed: ${e.reason || e.code}`)); close(`closed (${e.code})`); };
    ws.onmessage = (e) => {
      const bytes = new Uint8Array(e.data);
      if (bytes.length < 6) return close("short frame from server");
      const v = new DataView(bytes.buffer, bytes.byteOffset);
      const streamId = v.getUint32(0) & 0x7fffffff;
      const word = v.getUint16(4);
      const type = word >> 10, flags = word & 0x3ff;
      switch (type) {
        case T.KEEPALIVE:
          if (flags & F.RESPOND) send(frame(0, T.KEEPALIVE, 0, [bytes.subarray(6)]));
          return;
        case T.ERROR: {
          const code = v.getUint32(6);
          const message = fromUtf8.decode(bytes.subarray(10));
          if (streamId === 0) {
            reject(new RSocketError(code, message));
            return close(message);
          }
          const p = pending.get(streamId);
          pending.delete(streamId);
          p?.fail(new RSocketError(code, message));
          return;
        }
        case T.PAYLOAD: {
          const p = pending.get(streamId);
          if (!p) return;
          pending.delete(streamId);
          const { data, metadata } = payloadOf(bytes, flags, 0);
          p.done({ data: data.slice(), metadata });
          return;
        }
        case T.REQUEST_RESPONSE: {
          const { data, metadata } = payloadOf(bytes, flags, 0);
          Promise.resolve()
            .then(() => onRequest(data.slice(), metadata && fromUtf8.decode(metadata)))
            .then((answer) => send(frame(streamId, T.PAYLOAD, F.NEXT | F.COMPLETE, [answer ?? new Uint8Array()])))
            .catch((err) => {
              const text = utf8.encode(String(err?.message ?? err));
              const code = new Uint8Array(4);
              new DataView(code.buffer).setUint32(0, 0x201); // APPLICATION_ERROR
              send(frame(streamId, T.ERROR, 0, [code, text]));
            });
          return;
        }
        default:
          return; // REQUEST_N, CANCEL, LEASE…: nothing a simulator socket needs
      }
    };

    const socket = {
      /** Sends a REQUEST_RESPONSE; resolves with the answer's {data, metadata}. */
      request(data) {
        if (closed) return Promise.reject(new RSocketError(0, "not connected"));
        const id = nextId;
        nextId += 2;
        return new Promise((done, fail) => {
          const timer = setTimeout(() => { pending.delete(id); fail(new RSocketError(0, "no answer in time")); }, REQUEST_TIMEOUT_MS);
          pending.set(id, {
            done: (x) => { clearTimeout(timer); done(x); },
            fail: (e) => { clearTimeout(timer); fail(e); },
          });
          send(frame(id, T.REQUEST_RESPONSE, 0, [data]));
        });
      },
      close: () => close("closed by the page"),
      get closed() { return closed; },
    };
  });
}
