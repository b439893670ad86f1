// Protobuf for the browser phone: the messages a simulator socket sends and receives, with the
// field numbers of Hodi's wire schema (proto/hodi/wire). A schema is {field: [number, type]},
// where type is a scalar name or another schema; [number, type, "repeated"] for lists. A oneof is
// written as its fields side by side: set one. Unknown fields are skipped when decoding.

// ---- writing ----

function varint(out, n) {
  let v = BigInt.asUintN(64, BigInt(n));
  while (v >= 0x80n) {
    out.push(Number((v & 0x7fn) | 0x80n));
    v >>= 7n;
  }
  out.push(Number(v));
}

function key(out, number, wireType) {
  varint(out, number * 8 + wireType);
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

function lengthDelimited(out, number, bytes) {
  key(out, number, 2);
  varint(out, bytes.length);
  for (const b of bytes) out.push(b);
}

function writeValue(out, number, type, value) {
  if (typeof type === "object") {
    lengthDelimited(out, number, encode(type, value));
    return;
  }
  switch (type) {
    case "string":
      if (value !== "") lengthDelimited(out, number, utf8.encode(value));
      return;
    case "bytes":
      if (value.length) lengthDelimited(out, number, value);
      return;
    case "bool":
      if (value) { key(out, number, 0); varint(out, 1); }
      return;
    case "enum": case "int32": case "int64":
      if (value) { key(out, number, 0); varint(out, value); }
      return;
    case "double": {
      if (value === 0) return;
      key(out, number, 1);
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, value, true);
      for (const x of b) out.push(x);
      return;
    }
    default:
      throw new Error(`no such protobuf type ${type}`);
  }
}

/** Encodes `value` (a plain object) as the message `schema`. */
export function encode(schema, value) {
  const out = [];
  for (const [name, [number, type, repeated]] of Object.entries(schema)) {
    const v = value[name];
    if (v === undefined || v === null) continue;
    if (repeated) for (const item of v) writeValue(out, number, type, item);
    else writeValue(out, number, type, v);
  }
  return Uint8Array.from(out);
}

// ---- reading ----

class Reader {
  constructor(bytes) { this.b = bytes; this.at = 0; }
  more() { return this.at < this.b.length; }
  varint() {
    let v = 0n, shift = 0n;
    for (;;) {
      if (this.at >= this.b.length) throw new Error("truncated varint");
      const x = this.b[this.at++];
      v |= BigInt(x & 0x7f) << shift;
      if (!(x & 0x80)) return v;
      shift += 7n;
      if (shift > 63n) throw new Error("varint too long");
    }
  }
  take(n) {
    if (this.at + n > this.b.length) throw new Error("truncated field");
    const s = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return s;
  }
}

function scalar(type, wireType, r) {
  switch (type) {
    case "string": return fromUtf8.decode(r.take(Number(r.varint())));
    case "bytes": return r.take(Number(r.varint())).slice();
    case "bool": return r.varint() !== 0n;
    case "enum": case "int32": return Number(BigInt.asIntN(32, r.varint()));
    case "int64": return Number(BigInt.asIntN(64, r.varint()));
    case "double": return new DataView(r.take(8).slice().buffer).getFloat64(0, true);
    default: throw new Error(`no such protobuf type ${type} (wire type ${wireType})`);
  }
}

function skip(wireType, r) {
  switch (wireType) {
    case 0: r.varint(); return;
    case 1: r.take(8); return;
    case 2: r.take(Number(r.varint())); return;
    case 5: r.take(4); return;
    default: throw new Error(`unsupported wire type ${wireType}`);
  }
}

/** Decodes `bytes` as the message `schema` into a plain object (absent fields are absent). */
export function decode(schema, bytes) {
  const byNumber = new Map(Object.entries(schema).map(([name, spec]) => [spec[0], [name, spec]]));
  const out = {};
  const r = new Reader(bytes);
  while (r.more()) {
    const k = Number(r.varint());
    const number = Math.floor(k / 8), wireType = k % 8;
    const field = byNumber.get(number);
    if (!field) { skip(wireType, r); continue; }
    const [name, [, type, repeated]] = field;
    const value = typeof type === "object"
      ? decode(type, r.take(Number(r.varint())))
      : scalar(type, wireType, r);
    if (repeated) (out[name] ??= []).push(value);
    else out[name] = value;
  }
  return out;
}

// ---- the schema (numbers as in proto/hodi/wire) ----

const StringValue = { value: [1, "string"] };
const Duration = { seconds: [1, "int64"], nanos: [2, "int32"] };
const Cash = { currency_code: [1, "string"], amount: [2, "double"] };
const MessagingChannelNumber = { channel: [1, "enum"], number: [2, "string"] };
const PaymentChannelNumber = { channel: [1, "enum"], number: [2, "string"] };
const CustomerNumber = { provider: [1, "enum"], number: [2, "string"], partition: [3, StringValue] };

const SayCallAction = { text: [1, "string"] };
const PlayCallAction = { url: [1, "string"] };
const VoiceCallAction = {
  say: [1, SayCallAction],
  play: [2, PlayCallAction],
  get_digits: [3, { say: [1, SayCallAction], play: [2, PlayCallAction], finish_on_key: [4, StringValue], num_digits: [5, { value: [1, "int32"] }] }],
  dial: [4, {}],
  record_session: [5, {}],
  get_recording: [6, {}],
  enqueue: [7, {}],
  dequeue: [8, {}],
  reject: [9, {}],
  redirect: [10, { url: [1, "string"] }],
};
const OutboundMessage = {
  body: [1, {
    text: [1, "string"],
    media: [2, { url: [1, "string"], media: [2, "enum"] }],
    email: [4, { subject: [1, "string"], body_plain: [2, "string"] }],
    template: [5, { id: [1, "string"] }],
    url: [6, "string"],
    voice: [7, { actions: [1, VoiceCallAction, "repeated"] }],
    ussd: [8, { text: [1, "string"], is_terminal: [2, "bool"] }],
  }],
};
const InboundMessageBody = {
  text: [1, "string"],
  voice: [5, { direction: [1, "enum"], status: [2, "enum"], hangup_cause: [4, "enum"], dtmf_digits: [5, StringValue] }],
  ussd: [6, { status: [1, "enum"], text: [2, StringValue] }],
};

export const AppConnectionMetadata = {
  org_id: [1, "string"],
  app_id: [2, "string"],
  api_key: [3, StringValue],
  auth_token: [4, StringValue],
  simplex_mode: [5, "bool"],
  simulator_mode: [6, "bool"],
};

export const SimulatorToServerCommand = {
  receive_message: [1, {
    customer_number: [1, "string"],
    channel_number: [2, MessagingChannelNumber],
    parts: [3, InboundMessageBody, "repeated"],
    session_id: [4, StringValue],
    cost: [5, Cash],
    duration: [6, Duration],
  }],
  receive_payment: [2, {
    transaction_id: [1, "string"],
    channel_number: [2, PaymentChannelNumber],
    customer_number: [3, "string"],
    value: [4, Cash],
    status: [5, "enum"],
  }],
  update_payment_status: [3, { transaction_id: [1, "string"], status: [2, "enum"] }],
};

export const SimulatorToServerCommandReply = {
  status: [1, "bool"],
  description: [2, "string"],
  message: [3, OutboundMessage],
};

export const ServerToSimulatorNotification = {
  send_message: [1, {
    org_id: [1, "string"], customer_id: [2, "string"], message_id: [3, "string"],
    customer_number: [4, CustomerNumber], channel_number: [5, MessagingChannelNumber], message: [6, OutboundMessage],
  }],
  make_voice_call: [2, {
    org_id: [1, "string"], customer_id: [2, "string"], session_id: [3, "string"],
    customer_number: [4, CustomerNumber], channel_number: [5, MessagingChannelNumber],
  }],
  send_customer_payment: [3, {
    org_id: [1, "string"], customer_id: [2, "string"], app_id: [3, "string"], transaction_id: [6, "string"],
    customer_number: [7, CustomerNumber], channel_number: [8, PaymentChannelNumber], value: [9, Cash],
  }],
  send_channel_payment: [4, {
    org_id: [1, "string"], app_id: [2, "string"], transaction_id: [5, "string"],
    source: [7, "string"], destination: [8, "string"], value: [10, Cash],
  }],
  checkout_payment: [5, {
    org_id: [1, "string"], customer_id: [2, "string"], app_id: [3, "string"], transaction_id: [6, "string"],
    customer_number: [7, CustomerNumber], channel_number: [8, PaymentChannelNumber], value: [9, Cash],
  }],
};

// Enum values the phone uses.
export const Channel = { SMS: 1, VOICE: 2, USSD: 3 };
export const PaymentChannel = { CELLULAR: 1 };
export const Direction = { INBOUND: 1, OUTBOUND: 2 };
export const UssdStatus = { ACTIVE: 100 };
export const CallStatus = { ANSWERED: 101, ACTIVE: 200, COMPLETED: 300 };
export const HangupCause = { NORMAL_CLEARING: 16 };
export const PaymentStatus = { SUCCESS: 300, FAILED: 400 };
