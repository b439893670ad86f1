// The browser phone: a simulator socket for one customer number. It texts the app's SMS number
// (or writes on WhatsApp, Telegram, Messenger),
// dials USSD codes and answers menus, places and answers calls (showing what the app says, with a
// keypad for digits), pays and confirms or declines checkouts. What the app sends to other numbers
// of the org reaches this socket too and is left out.

import { connect } from "./rsocket.js";
import * as pb from "./proto.js";
import { call as browserCall } from "/voice/webrtc.js";

const $ = (id) => document.getElementById(id);
const root = $("phone");
let socket = null;
let me = null;
let ussd = null; // { code, session }
let call = null; // { session, channel, direction }, or { audio } for a call with sound

let checkout = null; // { transaction_id }

const rand = (kind) => `${kind}-${crypto.randomUUID().replaceAll("-", "")}`;

function status(text, ok) {
  $("status").textContent = text;
  $("status").className = ok ? "ok" : "muted";
}

function append(list, text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  $(list).append(li);
  li.scrollIntoView({ block: "nearest" });
  return li;
}

function bodyText(message) {
  const b = message?.body ?? {};
  if (b.text !== undefined) return b.text;
  if (b.ussd) return b.ussd.text;
  if (b.email) return `[email] ${b.email.subject}\n${b.email.body_plain ?? ""}`;
  if (b.media) return `[media] ${b.media.url}`;
  if (b.url !== undefined) return b.url;
  if (b.template) return `[template] ${b.template.id}`;
  if (b.voice) return "[voice]";
  return "";
}

async function command(entry) {
  const data = pb.encode(pb.SimulatorToServerCommand, entry);
  const answer = await socket.request(data);
  const reply = pb.decode(pb.SimulatorToServerCommandReply, answer.data);
  if (!reply.status) throw new Error(reply.description || "refused");
  return reply;
}

function receiveMessage(channel, number, part, session) {
  return command({
    receive_message: {
      customer_number: me,
      channel_number: { channel, number },
      parts: [part],
      session_id: session ? { value: session } : undefined,
    },
  });
}

// ---- what the server sends this phone ----

function mine(n) {
  return n?.customer_number?.number === me;
}

function onNotification(bytes) {
  const n = pb.decode(pb.ServerToSimulatorNotification, bytes);
  if (n.send_message && mine(n.send_message)) {
    const m = n.send_message;
    append("thread", `${m.channel_number?.number ?? ""}: ${bodyText(m.message)}`, "in");
  } else if (n.make_voice_call && mine(n.make_voice_call)) {
    const c = n.make_voice_call;
    call = { session: c.session_id, channel: c.channel_number?.number ?? "", direction: pb.Direction.OUTBOUND, ringing: true };
    $("call-state").textContent = `ringing: ${call.channel} is calling`;
    $("call-said").replaceChildren();
    $("keypad").hidden = false;
    $("answer").hidden = false;
  } else if (n.checkout_payment && mine(n.checkout_payment)) {
    const c = n.checkout_payment;
    checkout = { transaction_id: c.transaction_id };
    $("checkout-text").textContent = `Pay ${c.value?.currency_code} ${c.value?.amount} to ${c.channel_number?.number ?? "the app"}?`;
    $("checkout").hidden = false;
  } else if (n.send_customer_payment && mine(n.send_customer_payment)) {
    const p = n.send_customer_payment;
    append("payments", `received ${p.value?.currency_code} ${p.value?.amount}`, "in");
  }
  return new Uint8Array(); // ServerToSimulatorNotificationReply has no fields
}

// ---- calls ----

function showActions(reply) {
  const actions = reply.message?.body?.voice?.actions ?? [];
  let wantsDigits = false;
  for (const a of actions) {
    if (a.say) append("call-said", a.say.text, "said");
    if (a.play) append("call-said", `[plays ${a.play.url}]`, "said");
    if (a.get_digits) {
      wantsDigits = true;
      const prompt = a.get_digits.say?.text ?? (a.get_digits.play ? `[plays ${a.get_digits.play.url}]` : "");
      if (prompt) append("call-said", prompt, "said");
    }
    if (a.reject) { append("call-said", "[the app rejected the call]", "said"); endCall(); return; }
  }
  if (call) $("call-state").textContent = wantsDigits ? "in call: waiting for digits" : "in call";
}

async function voice(status, extra = {}) {
  const part = { voice: { direction: call.direction, status, ...extra } };
  return receiveMessage(pb.Channel.VOICE, call.channel, part, call.session);
}

function endCall() {
  if (call?.audio) call.audio.hangUp();
  call = null;
  $("keypad").hidden = true;
  $("call-state").textContent = "no call";
}

// ---- wiring ----

function guard(f) {
  return async (e) => {
    e?.preventDefault?.();
    if (!socket || socket.closed) { status("not connected: choose a number first", false); return; }
    try { await f(e); } catch (err) { status(`error: ${err.message}`, false); }
  };
}

async function start() {
  const number = $("number").value.trim();
  if (!number) return;
  socket?.close();
  status("connecting…", false);
  try {
    const grant = await (await fetch("/console/api/phone-token", { method: "POST" })).json();
    const secure = location.protocol === "https:" && root.dataset.wssPort;
    const port = secure ? root.dataset.wssPort : (root.dataset.wsPort || root.dataset.wssPort);
    const scheme = secure || !root.dataset.wsPort ? "wss" : "ws";
    const setupData = pb.encode(pb.AppConnectionMetadata, {
      org_id: grant.org_id, app_id: grant.app_id, auth_token: { value: grant.token },
      simulator_mode: true, simplex_mode: true,
    });
    socket = await connect(`${scheme}://${location.hostname}:${port}`, {
      setupData,
      setupMetadata: { agent: "hodi-console/phone" },
      onRequest: onNotification,
      onClose: (why) => status(`disconnected: ${why}`, false),
    });
    me = number;
    status(`connected as ${number}`, true);
    root.dataset.connected = number;
    $("state-link").href = `/console/customers?q=${encodeURIComponent(number)}`;
    $("state-link").hidden = false;
  } catch (err) {
    status(`cannot connect: ${err.message}`, false);
  }
}

$("connect").addEventListener("click", start);

$("sms-form").addEventListener("submit", guard(async () => {
  const text = $("sms-text").value;
  if (!text) return;
  const [channel, number] = $("sms-to").value.split("|");
  await receiveMessage(Number(channel), number, { text });
  append("thread", `me: ${text}`, "out");
  $("sms-text").value = "";
}));

async function ussdStep(input) {
  const reply = await receiveMessage(pb.Channel.USSD, ussd.code, { ussd: { status: pb.UssdStatus.ACTIVE, text: { value: input } } }, ussd.session);
  const menu = reply.message?.body?.ussd;
  const text = menu ? menu.text : bodyText(reply.message);
  const terminal = menu ? !!menu.is_terminal : true;
  $("ussd-screen").textContent = text || "(the app sent no menu; session over)";
  $("ussd-answer").hidden = terminal;
  if (terminal) ussd = null;
  else $("ussd-input").focus();
}

$("ussd-dial").addEventListener("submit", guard(async () => {
  ussd = { code: $("ussd-code").value, session: rand("ussd") };
  await ussdStep("");
}));

$("ussd-answer").addEventListener("submit", guard(async () => {
  if (!ussd) return;
  const input = $("ussd-input").value;
  $("ussd-input").value = "";
  await ussdStep(input);
}));

$("call-dial").addEventListener("submit", guard(async () => {
  call = { session: rand("call"), channel: $("call-to").value, direction: pb.Direction.INBOUND };
  $("call-said").replaceChildren();
  $("keypad").hidden = false;
  $("answer").hidden = true;
  showActions(await voice(pb.CallStatus.ANSWERED));
}));

// A real call from this page (WebRTC through Hodi's gateway): the app hears the microphone and
// this page plays what the app says; the keypad sends tones.
$("call-audio").addEventListener("click", guard(async () => {
  const grant = await (await fetch("/console/api/phone-token", { method: "POST" })).json();
  $("call-said").replaceChildren();
  $("call-state").textContent = "calling (audio)…";
  const audio = await browserCall({
    orgId: grant.org_id, appId: grant.app_id, token: grant.token, to: $("call-to").value,
    from: me ?? undefined,
    onState: (s) => ($("call-state").textContent = s === "answered" ? "in call (audio)" : `${s} (audio)`),
  });
  call = { audio };
  $("keypad").hidden = false;
  $("answer").hidden = true;
  audio.ended.then((reason) => {
    if (!call || call.audio === audio) {
      call = null;
      $("keypad").hidden = true;
      $("call-state").textContent = `no call (the last ended: ${reason})`;
    }
  });
}));

$("answer").addEventListener("click", guard(async () => {
  if (!call) return;
  $("answer").hidden = true;
  showActions(await voice(pb.CallStatus.ANSWERED));
}));

for (const key of document.querySelectorAll("#keypad [data-key]")) {
  key.addEventListener("click", guard(async () => {
    if (!call) return;
    append("call-said", `me: ${key.dataset.key}`, "out");
    if (call.audio) return call.audio.press(key.dataset.key);
    showActions(await voice(pb.CallStatus.ACTIVE, { dtmf_digits: { value: key.dataset.key } }));
  }));
}

$("hang-up").addEventListener("click", guard(async () => {
  if (!call) return;
  if (call.audio) return endCall();
  await voice(pb.CallStatus.COMPLETED, { hangup_cause: pb.HangupCause.NORMAL_CLEARING });
  endCall();
}));

async function finishCheckout(statusCode, word) {
  if (!checkout) return;
  await command({ update_payment_status: { transaction_id: checkout.transaction_id, status: statusCode } });
  append("payments", `checkout ${word}`, "out");
  checkout = null;
  $("checkout").hidden = true;
}
$("confirm").addEventListener("click", guard(() => finishCheckout(pb.PaymentStatus.SUCCESS, "confirmed")));
$("decline").addEventListener("click", guard(() => finishCheckout(pb.PaymentStatus.FAILED, "declined")));

$("pay-form").addEventListener("submit", guard(async () => {
  const amount = Number($("pay-amount").value);
  const currency = $("pay-currency").value.trim().toUpperCase();
  if (!(amount > 0) || !currency) return;
  await command({
    receive_payment: {
      transaction_id: rand("pay"),
      channel_number: { channel: pb.PaymentChannel.CELLULAR, number: $("pay-to").value },
      customer_number: me,
      value: { currency_code: currency, amount },
      status: pb.PaymentStatus.SUCCESS,
    },
  });
  append("payments", `paid ${currency} ${amount} to ${$("pay-to").value}`, "out");
}));
