// Browser calls to a Hodi voice number, for any page: `import { call } from "/voice/webrtc.js"`.
//
//   const c = await call({ orgId, appId, token, to: "+254711082000", from: "user-42",
//                          onState: (s) => console.log(s) });   // "ringing", "answered"
//   c.press("1#");        // keys, in-band (RFC 4733) like a phone's
//   c.hangUp();
//   const why = await c.ended;
//
// `token` comes from the app's server (GenerateAuthToken); `from` is who the app sees calling (an
// app-provider customer number; a fresh name if omitted). The far end's audio plays through an
// <audio> element (`audio` to use yours). Served by Hodi at /voice/webrtc.js; no dependencies.

export async function call({ orgId, appId, token, to, from, onState = () => {}, audio, base = location.origin, microphone }) {
  const stream = microphone ?? (await navigator.mediaDevices.getUserMedia({ audio: true }));
  const pc = new RTCPeerConnection();
  const sender = pc.addTrack(stream.getAudioTracks()[0], stream);
  const player = audio ?? new Audio();
  pc.ontrack = (e) => {
    player.srcObject = e.streams[0] ?? new MediaStream([e.track]);
    player.play().catch(() => {});
  };
  await pc.setLocalDescription(await pc.createOffer());
  // One offer with every candidate (the gateway does not trickle).
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
    setTimeout(resolve, 3000);
  });
  const ws = new WebSocket(`${base.replace(/^http/, "ws")}/voice/webrtc`);
  let finish;
  const ended = new Promise((resolve) => (finish = resolve));
  const stop = (reason) => {
    finish(reason);
    pc.close();
    if (!microphone) stream.getTracks().forEach((t) => t.stop());
  };
  ws.onmessage = async (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "answer") await pc.setRemoteDescription({ type: "answer", sdp: m.sdp });
    else if (m.type === "ringing" || m.type === "answered") onState(m.type);
    else if (m.type === "ended") stop(m.reason);
  };
  ws.onclose = () => stop("the signalling socket closed");
  ws.onopen = () =>
    ws.send(JSON.stringify({ type: "call", orgId, appId, token, to, from, sdp: pc.localDescription.sdp }));
  return {
    ended,
    peerConnection: pc,
    press(keys) {
      if (sender.dtmf && sender.dtmf.canInsertDTMF) sender.dtmf.insertDTMF(keys, 200, 100);
      else if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "dtmf", digits: keys }));
    },
    hangUp() {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "hangup" }));
      else stop("hung up");
    },
  };
}
