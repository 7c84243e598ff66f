// lib.js: what the browser scenarios share -- starting Debian's Chromium
// through puppeteer-core (never a downloaded browser), one isolated browser
// context per person, signing in with an API token, watching a page for
// dialogs and requests, and small assertions whose messages say what the
// page showed instead.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

let puppeteer;
try {
  puppeteer = require('puppeteer-core');
} catch (e) {
  throw new Error('puppeteer-core is not installed in tests/browser/node_modules: run scripts/deps.sh '
    + '(it runs `npm ci` in tests/browser)');
}

// The flags the closed network needs: no background connections, no
// component updates, no QUIC, and a profile of our own.
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-default-apps', '--disable-extensions', '--no-default-browser-check',
  '--disable-features=Translate,MediaRouter,OptimizationHints',
  '--disable-dev-shm-usage', // containers often have a tiny /dev/shm
];

class CheckFailed extends Error {}

// Throws with msg unless cond holds.
function check(cond, msg) {
  if (!cond) throw new CheckFailed(msg);
}

async function launch(executablePath) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-chromium-'));
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    pipe: true,
    args: [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`],
    defaultViewport: { width: 1280, height: 800 },
    protocolTimeout: 60000,
  });
  browser.profileDir = profile;
  return browser;
}

async function close(browser) {
  await browser.close();
  fs.rmSync(browser.profileDir, { recursive: true, force: true });
}

// A page that records what it did: dialogs (dismissed at once), every
// request, and script errors.
async function watchedPage(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.setDefaultNavigationTimeout(20000);
  page.seen = { dialogs: [], requests: [], errors: [] };
  page.on('dialog', async (d) => {
    page.seen.dialogs.push(`${d.type()}: ${d.message()}`);
    await d.dismiss().catch(() => {});
  });
  page.on('request', (r) => page.seen.requests.push({ url: r.url(), method: r.method() }));
  page.on('pageerror', (e) => page.seen.errors.push(String(e)));
  if (process.env.SLUICE_BROWSER_TRACE) {
    const t0 = Date.now();
    page.on('response', (r) => process.stdout.write(`trace: +${Date.now() - t0} ms ${r.status()} ${r.request().method()} ${r.url()}\n`));
  }
  return page;
}

// The submit button of form sel (a <button> submits unless typed otherwise).
const SUBMIT = (form) => `${form} button:not([type="button"]):not([type="reset"]), ${form} input[type="submit"]`;

const pathOf = (page) => new URL(page.url()).pathname;

// Clicks sel and waits for the navigation it starts; returns the
// navigation's final response (after redirects).
async function clickAndWait(page, sel) {
  const [resp] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(sel)]);
  return resp;
}

async function text(page, sel) {
  const el = await page.$(sel);
  return el ? (await el.evaluate((e) => e.textContent)).trim() : null;
}

async function count(page, sel) {
  return (await page.$$(sel)).length;
}

async function attr(page, sel, name) {
  const el = await page.$(sel);
  return el ? el.evaluate((e, n) => e.getAttribute(n), name) : null;
}

// A short description of the page for failure messages.
async function describe(page) {
  const body = await page.evaluate(() => (document.body ? document.body.innerText : '')).catch(() => '');
  return `${page.url()}: ${body.replace(/\s+/g, ' ').slice(0, 600)}`;
}

// Signs in with an API token through the login form, starting from `/`
// as a person would.  Returns the page, on /gates.
async function signInWithToken(context, base, token) {
  const page = await watchedPage(context);
  await page.goto(`${base}/`);
  check(pathOf(page) === '/login', `/ without a session should lead to /login, got ${await describe(page)}`);
  await page.type('#login-token input[name="token"]', token);
  await clickAndWait(page, SUBMIT('#login-token'));
  check(pathOf(page) === '/gates', `token sign-in should land on /gates, got ${await describe(page)}`);
  return page;
}

// The session cookie of a context, or undefined.
async function sessionCookie(page) {
  const cookies = await page.cookies();
  return cookies.find((c) => c.name === 'sluice_session');
}

module.exports = {
  CheckFailed, check, launch, SUBMIT, close, watchedPage, pathOf, clickAndWait, text, count, attr, describe,
  signInWithToken, sessionCookie,
};
