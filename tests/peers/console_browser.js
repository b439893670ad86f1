// The web console in real Chromium (Debian's, driven by playwright-core): a wrong API key is
// refused; the org's key logs in; the browser phone plays two customers of the debt-collection
// example app — one answers the SMS with OK and confirms the checkout, one ignores it, is called,
// presses 1 and declines — and the dashboard, customer and calls pages show what happened;
// another org's console sees none of it; revoking that org's key logs it out.
//
// Talks with the Rust test (tests/console_browser.rs), which runs the example app: prints
// `READY <role> <number>` when a phone is connected (the test then enrolls that number) and
// `DONE` at the end. Screenshots go to $HODI_SCREENSHOTS.

const assert = require('node:assert/strict');
const path = require('node:path');
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');
const { chromium } = require('playwright-core');

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = `http://127.0.0.1:${env('HODI_HTTP_PORT')}`;
const shots = env('HODI_SCREENSHOTS');
const WAIT = 20000;

async function shot(page, name) {
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

async function logIn(page, org, key) {
  await page.goto(`${base}/console`);
  assert.match(page.url(), /\/console\/login$/, 'an unknown visitor is sent to the login page');
  await page.fill('input[name=org]', org);
  await page.fill('input[name=key]', key);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/console/login') && r.request().method() === 'POST'),
    page.click('button[type=submit]'),
  ]);
  return response;
}

async function phone(context, number) {
  const page = await context.newPage();
  await page.goto(`${base}/console/phone`);
  await page.fill('#number', number);
  await page.click('#connect');
  await page.waitForFunction((n) => document.getElementById('status').textContent === `connected as ${n}`, number, { timeout: WAIT });
  return page;
}

const threadHas = (page, text) =>
  page.locator('#thread li', { hasText: text }).first().waitFor({ timeout: WAIT });

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--autoplay-policy=no-user-gesture-required', '--disable-features=WebRtcHideLocalIpsWithMdns'] });
  try {
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();

    // A wrong key: refused, no session.
    const refused = await logIn(page, env('HODI_ORG'), 'not-the-key');
    assert.equal(refused.status(), 401);
    await page.locator('.error', { hasText: 'do not match' }).waitFor({ timeout: WAIT });
    await shot(page, 'login-refused');
    await page.goto(`${base}/console/dashboard`);
    assert.match(page.url(), /\/console\/login$/, 'no session after a wrong key');

    // The org's key.
    await logIn(page, env('HODI_ORG'), env('HODI_KEY'));
    await page.waitForURL(/\/console\/dashboard$/);
    assert.equal(await page.textContent('#org'), env('HODI_ORG'));

    // Customer one pays after the SMS.
    const payer = env('HODI_PAYER');
    const one = await phone(context, payer);
    console.log(`READY pays ${payer}`);
    await threadHas(one, 'You owe KES 500');
    await one.fill('#sms-text', 'OK');
    await one.click('#sms-send');
    await threadHas(one, 'me: OK');
    await one.locator('#checkout').waitFor({ state: 'visible', timeout: WAIT });
    assert.match(await one.textContent('#checkout-text'), /KES 500/);
    await one.click('#confirm');
    await threadHas(one, 'Thank you! We received KES 500');
    // The same phone writes on WhatsApp too (the example app does not answer there).
    await one.selectOption('#sms-to', { label: 'WhatsApp +254711082001' });
    await one.fill('#sms-text', 'hello on whatsapp');
    await one.click('#sms-send');
    await threadHas(one, 'me: hello on whatsapp');
    assert.match(await one.textContent('#status'), /^connected as/, 'no error sending on WhatsApp');
    await shot(one, 'phone-sms-checkout');

    // Customer two ignores the SMS, is called, presses 1 and declines the checkout.
    const ignorer = env('HODI_IGNORER');
    const two = await phone(context, ignorer);
    console.log(`READY ignores ${ignorer}`);
    await threadHas(two, 'You owe KES 500');
    await two.waitForFunction(() => document.getElementById('call-state').textContent.startsWith('ringing'), null, { timeout: WAIT });
    await two.click('#answer');
    await two.locator('#call-said li', { hasText: 'Press 1 to pay now.' }).waitFor({ timeout: WAIT });
    await two.click('#keypad [data-key="1"]');
    await two.locator('#call-said li', { hasText: 'We have sent a payment request' }).waitFor({ timeout: WAIT });
    await two.locator('#checkout').waitFor({ state: 'visible', timeout: WAIT });
    await shot(two, 'phone-call-keypad');
    await two.click('#decline');
    await threadHas(two, 'Your payment was not completed');
    await two.click('#hang-up');
    await two.waitForFunction(() => document.getElementById('call-state').textContent === 'no call', null, { timeout: WAIT });

    // A real call from the phone (WebRTC, the fake microphone): the app answers it and the page
    // plays what it says; hanging up ends it.
    await two.click('#call-audio');
    await two.waitForFunction(() => document.getElementById('call-state').textContent === 'in call (audio)', null, { timeout: WAIT });
    await two.waitForTimeout(1500); // "You owe KES 500." plays
    await shot(two, 'phone-call-audio');
    await two.click('#hang-up');
    await two.waitForFunction(() => document.getElementById('call-state').textContent.startsWith('no call (the last ended'), null, { timeout: WAIT });

    // USSD: the example app has no menu; the phone says so rather than hanging.
    await two.click('#ussd-dial button');
    await two.waitForFunction(() => document.getElementById('ussd-screen').textContent.length > 0 || document.getElementById('status').textContent.startsWith('error'), null, { timeout: WAIT });

    // The dashboard: the app socket, both phones, the notifications answered.
    await page.goto(`${base}/console/dashboard`);
    await page.locator('#apps li', { hasText: env('HODI_APP') }).first().waitFor({ timeout: WAIT });
    await page.waitForFunction(() => document.querySelectorAll('#simulators li').length >= 2, null, { timeout: WAIT });
    await page.locator('#recent tbody tr.ok', { hasText: 'received_message' }).first().waitFor({ timeout: WAIT });
    await page.locator('#recent tbody tr.ok', { hasText: 'payment_status' }).first().waitFor({ timeout: WAIT });
    await page.locator('#outbox-chart polyline').waitFor({ state: 'attached', timeout: WAIT });
    await shot(page, 'dashboard');

    // The paying customer's state: both messages and the payment.
    await page.goto(`${base}/console/customers?q=${encodeURIComponent(payer)}`);
    await page.locator('#messages tr', { hasText: 'You owe KES 500' }).waitFor({ timeout: WAIT });
    await page.locator('#messages tr', { hasText: 'Thank you! We received KES 500' }).waitFor({ timeout: WAIT });
    await page.locator('#payments tr', { hasText: 'success' }).waitFor({ timeout: WAIT });
    await page.locator('#messages tr', { hasText: 'hello on whatsapp' }).filter({ hasText: 'whatsapp' }).waitFor({ timeout: WAIT });
    await shot(page, 'customer');
    await page.goto(`${base}/console/calls`);
    await shot(page, 'calls');

    // Another org's console sees none of it.
    const other = await browser.newContext();
    const theirs = await other.newPage();
    await logIn(theirs, env('HODI_ORG2'), env('HODI_KEY2'));
    await theirs.waitForURL(/\/console\/dashboard$/);
    await theirs.goto(`${base}/console/customers?q=${encodeURIComponent(payer)}`);
    await theirs.locator('#not-found').waitFor({ timeout: WAIT });
    const overview = await theirs.evaluate(async () => (await fetch('/console/api/overview')).json());
    assert.deepEqual([overview.apps.length, overview.simulators.length, overview.recent.length], [0, 0, 0], JSON.stringify(overview));
    // …nor its recordings, nor does a made-up path get anywhere.
    const stray = await theirs.evaluate(async () => (await fetch('/console/recordings/call_x/rec_y.wav')).status);
    assert.equal(stray, 404);

    // Revoking the other org's key ends its console session at the next page.
    const cli = (...args) => execFileSync(env('HODI_BIN'), args, { env: process.env, encoding: 'utf8' });
    cli('keys', 'revoke', env('HODI_KEY2_ID'));
    await theirs.goto(`${base}/console/dashboard`);
    assert.match(theirs.url(), /\/console\/login$/, 'a revoked key logs out');

    console.log('DONE');
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
