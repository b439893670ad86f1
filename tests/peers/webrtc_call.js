// A browser call in real Chromium (Debian's, driven by playwright-core): the page imports the
// script Hodi serves (/voice/webrtc.js), takes the fake microphone
// (--use-fake-device-for-media-stream: a beeping tone), calls the voice number over Hodi's WebRTC
// signalling socket with a token the app minted, reports how loud what it
// receives is (the inbound RTP stream's audioLevel and totalAudioEnergy, from getStats), presses
// a key through RTCDTMFSender when told to, and reports how the call ended.
//
// Talks with the Rust test (tests/voice_webrtc.rs) on stdout, one line each:
//   SETUP <ms>          from the call starting (microphone, offer, signalling) to the first audio received
//   HEARD <level> <energy>   the loudest audioLevel seen (0..1) and the total energy, once audio flows
//   PRESSED <key>       after insertDTMF (when HODI_PRESS is set)
//   ENDED <reason>      the gateway's last word
// and exits 0. Env: HODI_HTTP_PORT, HODI_ORG, HODI_APP, HODI_TOKEN, HODI_TO, HODI_FROM, HODI_PRESS.

const { chromium } = require('playwright-core');

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const base = `http://127.0.0.1:${env('HODI_HTTP_PORT')}`;

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      // Host candidates as addresses, not mDNS names the gateway could not resolve.
      '--disable-features=WebRtcHideLocalIpsWithMdns',
    ],
  });
  try {
    const page = await browser.newPage();
    page.on('console', (m) => process.stderr.write(`page: ${m.text()}\n`));
    // Same origin as the signalling socket; http://127.0.0.1 is a secure context for the mic.
    await page.goto(`${base}/healthz`);
    await page.exposeFunction('report', (line) => console.log(line));
    await page.evaluate(async (p) => {
      // The script Hodi serves for pages: what an app's own page would import.
      const { call } = await import('/voice/webrtc.js');
      const opened = performance.now();
      const c = await call({
        orgId: p.org, appId: p.app, token: p.token, to: p.to, from: p.from,
        onState: (s) => console.log(`state ${s}`),
      });
      const pc = c.peerConnection;

      // Watch what arrives: first packet (setup time), loudest level, total energy.
      let loudest = 0;
      let heard = false;
      let setup = false;
      let pressed = false;
      const watching = setInterval(async () => {
        const stats = await pc.getStats();
        stats.forEach((s) => {
          if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
          if (!setup && s.packetsReceived > 0) {
            setup = true;
            window.report(`SETUP ${Math.round(performance.now() - opened)}`);
          }
          loudest = Math.max(loudest, s.audioLevel || 0);
          if (p.debug) console.log(JSON.stringify({ packets: s.packetsReceived, level: s.audioLevel, energy: s.totalAudioEnergy }));
          if (!heard && loudest > 0.05 && (s.totalAudioEnergy || 0) > 0.001) {
            heard = true;
            window.report(`HEARD ${loudest.toFixed(3)} ${(s.totalAudioEnergy || 0).toFixed(5)}`);
          }
        });
        if (heard && p.press && !pressed) {
          pressed = true;
          c.press(p.press);
          window.report(`PRESSED ${p.press}`);
        }
      }, 100);
      const reason = await Promise.race([c.ended, new Promise((r) => setTimeout(() => r('timeout'), 60000))]);
      clearInterval(watching);
      window.report(`ENDED ${reason}`);
    }, {
      base, org: env('HODI_ORG'), app: env('HODI_APP'), token: env('HODI_TOKEN'), to: env('HODI_TO'),
      from: process.env.HODI_FROM || undefined, press: process.env.HODI_PRESS || '', debug: !!process.env.HODI_PAGE_DEBUG,
    });
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
