// scenarios.js: what a person does with the sluice web pages, each scenario
// a function that throws (CheckFailed) when the page does not behave as
// docs/web.md says.  They run in this order against one `sluice serve`
// prepared by tests/test_browser.c (see run.js for the spec it passes):
//
//   sign_in_token        token sign-in (a bad token refused), cookie flags,
//                        My gates lists the open gates with deadlines, oldest first
//   gate_evidence        the gate page: info, instructions, evidence with job
//                        links, typed inputs with defaults, the decision form
//   approve_with_input   approving with input percent=25 and a comment
//   run_proceeds         the run page shows the next step run with that
//                        input; Runs and Audit show the run and the decision
//   concurrent_refused   two approvers click at once: one approval, the other
//                        shown as refused with its reason
//   csrf_cross_site      forms auto-submitted from other origins (cross-site,
//                        and same-site without, with a wrong and with the
//                        victim's real token) are refused and nothing changes
//   proxy_sign_in        behind a reverse proxy at a configured address the
//                        user it names is signed in; from elsewhere the
//                        header is ignored
//   oidc_sign_in         sign-in through the test identity provider shows the
//                        user's gates and decides one as that user; a forged
//                        callback signs nobody in
//   hostile_inert        outputs, vars, instructions and comments holding
//                        <script> and "><img onerror=...> render as text: no
//                        dialog, no unexpected request, no injected element
//   sign_out             sign-out ends the session server-side: the old
//                        cookie is refused afterwards
'use strict';

const http = require('node:http');
const {
  check, watchedPage, pathOf, clickAndWait, text, count, attr, describe, signInWithToken, sessionCookie, SUBMIT,
} = require('./lib');

// One <li class="decision"> per decision (docs/web.md); the list may hold
// a placeholder item while there is none.
const DECISIONS = '#approvals li.decision';

const gatePath = (r) => `/runs/${r.run}/gates/${r.gate}`;

// One signed-in page per user, made on first use.
async function as(ctx, user) {
  if (!ctx.pages[user]) {
    const context = await ctx.browser.createBrowserContext();
    ctx.pages[user] = await signInWithToken(context, ctx.spec.base, ctx.spec.tokens[user]);
  }
  return ctx.pages[user];
}

async function goto(page, url) {
  const resp = await page.goto(url, { waitUntil: 'load' });
  check(resp && resp.status() === 200, `GET ${url}: status ${resp && resp.status()}: ${await describe(page)}`);
  return resp;
}

async function signInToken(ctx) {
  const { base, tokens, runs } = ctx.spec;
  const context = await ctx.browser.createBrowserContext();
  const page = await watchedPage(context);
  await page.goto(`${base}/`);
  check(pathOf(page) === '/login', `/ signed out should redirect to /login: ${await describe(page)}`);
  check(new URL(page.url()).searchParams.get('next') === '/gates', `the redirect should carry next=/gates: ${page.url()}`);
  const csrf = await attr(page, '#login-token input[name="csrf"]', 'value');
  check(csrf && csrf.length >= 16, `the login form has no CSRF field (got ${csrf})`);
  check(await attr(page, '#login-token', 'method') === 'post', 'the login form must POST');
  check(await attr(page, '#login-token input[name="token"]', 'type') === 'password', 'the token field must be a password field');

  // A token that is not one: refused on the page, no session.
  await page.type('#login-token input[name="token"]', 'slk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
  const refused = await clickAndWait(page, SUBMIT('#login-token'));
  check(refused.status() === 401, `a bad token should be answered 401, got ${refused.status()}`);
  check(pathOf(page) === '/login', `a bad token must not sign in: ${await describe(page)}`);
  check(await count(page, '#flash.error') === 1, `a bad token should show #flash.error: ${await describe(page)}`);
  check(!(await sessionCookie(page)), 'a bad token must not set a session cookie');

  // bob's token signs him in, to /gates.
  await page.type('#login-token input[name="token"]', tokens.bob);
  await clickAndWait(page, SUBMIT('#login-token'));
  check(pathOf(page) === '/gates', `bob's token should land on /gates: ${await describe(page)}`);
  const cookie = await sessionCookie(page);
  check(cookie, 'no sluice_session cookie after signing in');
  check(cookie.httpOnly, 'the session cookie must be HttpOnly');
  check(cookie.sameSite === 'Lax' || cookie.sameSite === 'Strict', `the session cookie's SameSite is ${cookie.sameSite}`);
  check(cookie.path === '/', `the session cookie's path is ${cookie.path}`);
  check(!cookie.value.includes(tokens.bob.slice(4, 20)), 'the session cookie must not be the API token');

  // My gates: every open gate bob may decide, with a deadline, oldest first.
  check(await count(page, 'table#my-gates') === 1, `no table#my-gates: ${await describe(page)}`);
  const rows = await page.$$eval('#my-gates tr.gate', (trs) => trs.map((tr) => {
    const a = tr.querySelector('a.gate-link');
    const t = tr.querySelector('time.deadline');
    return { href: a && a.getAttribute('href'), deadline: t && t.getAttribute('datetime'), text: tr.innerText };
  }));
  for (const key of ['approve', 'race', 'csrf', 'hostile']) {
    check(rows.some((r) => r.href === gatePath(runs[key])),
      `My gates should link ${gatePath(runs[key])}; rows: ${JSON.stringify(rows)}`);
  }
  let last = -Infinity;
  for (const r of rows) {
    const at = Date.parse(r.deadline);
    check(!Number.isNaN(at), `a gate row without a parseable <time class="deadline" datetime>: ${JSON.stringify(r)}`);
    check(at > Date.now(), `a deadline in the past on an open gate: ${r.deadline}`);
    check(at >= last, `My gates is not oldest first (deadlines out of order): ${JSON.stringify(rows)}`);
    last = at;
  }
  ctx.pages.bob = page;
}

async function gateEvidence(ctx) {
  const { base, runs } = ctx.spec;
  const r = runs.approve;
  const page = await as(ctx, 'bob');
  await goto(page, `${base}${gatePath(r)}`);
  check((await text(page, 'h1') || '').length > 0, 'the gate page has no <h1>');
  const info = await text(page, '#gate-info');
  check(info && info.includes(r.run) && info.includes(r.pipeline),
    `#gate-info should name the run ${r.run} and the pipeline ${r.pipeline}: ${info}`);
  check(info.includes('alice'), `#gate-info should name the trigger (alice): ${info}`);
  check(await text(page, '#gate-status') === 'open', `#gate-status: ${await text(page, '#gate-status')}`);
  const instr = await text(page, '#instructions');
  check(instr && instr.includes(r.instructions), `#instructions should say "${r.instructions}": ${instr}`);
  check(await count(page, DECISIONS) === 0, 'no decision yet, but #approvals lists some');
  const left = await text(page, '#approvers-left');
  check(left && left.includes('carol') && left.includes('dave'), `#approvers-left should name carol and dave: ${left}`);

  const step = '#evidence .evidence-step[data-step="build"]';
  check(await count(page, step) === 1, `no evidence for step build: ${await describe(page)}`);
  check(await attr(page, step, 'data-status') === 'succeeded', `build's evidence status: ${await attr(page, step, 'data-status')}`);
  const out = await text(page, `${step} pre.output`);
  check(out && out.includes(r.build_marker), `build's output should show "${r.build_marker}": ${out}`);
  const jobHref = await attr(page, `${step} a.job-link`, 'href');
  check(/^\/jobs\/[^/]+$/.test(jobHref || ''), `build's job link: ${jobHref}`);

  check(await attr(page, '#decide', 'method') === 'post', 'the decision form must POST');
  check(await attr(page, '#decide', 'action') === `${gatePath(r)}/decide`, `#decide action: ${await attr(page, '#decide', 'action')}`);
  const csrf = await attr(page, '#decide input[name="csrf"]', 'value');
  check(csrf && csrf.length >= 16, 'the decision form has no CSRF token');
  check(await attr(page, '#decide input[name="input.percent"]', 'type') === 'number', 'input percent (int) should be a number field');
  check(await page.$eval('#decide input[name="input.percent"]', (e) => e.value) === '10', 'input percent should default to 10');
  check(await count(page, '#decide textarea[name="comment"]') === 1, 'no comment field');
  check(await attr(page, '#approve', 'value') === 'approve' && await attr(page, '#reject', 'value') === 'reject',
    'approve/reject buttons with decision values');

  // The job behind the evidence, one click away.
  await Promise.all([page.waitForNavigation(), page.click(`${step} a.job-link`)]);
  check(pathOf(page) === jobHref, `the job link went to ${page.url()}`);
  const job = await page.evaluate(() => document.body.innerText);
  check(job.includes('succeeded') && job.includes(r.build_marker), `the job page should show its status and output: ${job.slice(0, 400)}`);
}

async function approveWithInput(ctx) {
  const { base, runs } = ctx.spec;
  const r = runs.approve;
  const page = await as(ctx, 'bob');
  await goto(page, `${base}${gatePath(r)}`);
  const field = await page.$('#decide input[name="input.percent"]');
  await field.click({ clickCount: 3 });
  await field.type('25');
  await page.type('#decide textarea[name="comment"]', 'staging looks fine');
  await clickAndWait(page, '#approve');
  check(pathOf(page) === gatePath(r), `after approving, back on the gate page, got ${page.url()}`);
  check(await count(page, '#flash.ok') === 1, `no #flash.ok after approving: ${await describe(page)}`);
  check(await text(page, '#gate-status') === 'approved', `#gate-status after the releasing approval: ${await text(page, '#gate-status')}`);
  const approvals = await text(page, '#approvals');
  check(approvals && approvals.includes('bob') && approvals.includes('staging looks fine'),
    `#approvals should show bob's approval and comment: ${approvals}`);
  await goto(page, page.url());
  check(await count(page, '#flash') === 0, 'the flash must be shown once, not again on reload');
}

// Reloads url until pred(page) holds (the run moves on in the background).
async function waitFor(page, url, pred, what, ms) {
  const end = Date.now() + ms;
  for (;;) {
    await goto(page, url);
    if (await pred(page)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${await describe(page)}`);
    await new Promise((res) => setTimeout(res, 500));
  }
}

async function runProceeds(ctx) {
  const { base, runs } = ctx.spec;
  const r = runs.approve;
  const page = await as(ctx, 'bob');
  const ship = 'li.step[data-step="ship"]';
  await waitFor(page, `${base}/runs/${r.run}`,
    async (p) => await attr(p, ship, 'data-status') === 'succeeded', 'step ship to succeed', 45000);
  check(await attr(page, 'li.step[data-step="build"]', 'data-status') === 'succeeded', 'build should show succeeded');
  check(await attr(page, 'li.step[data-step="go"]', 'data-status') === 'succeeded', 'the approved gate step should show succeeded');
  const gate = await text(page, 'li.step[data-step="go"]');
  check(gate.includes('bob'), `the timeline should show bob's decision at the gate: ${gate}`);
  const out = await text(page, `${ship} pre.output`);
  check(out && /"?slept_ms"?\s*:\s*25\b/.test(out), `ship ran with the approved input percent=25: ${out}`);
  const audit = await attr(page, '#audit-link', 'href');
  check(audit === `/runs/${r.run}/audit`, `#audit-link: ${audit}`);

  await waitFor(page, `${base}/runs`, async (p) => await attr(p, `tr.run:has(a[href="/runs/${r.run}"])`, 'data-status') === 'succeeded',
    'the Runs page to list the run as succeeded', 20000);
  check(await count(page, 'table#runs') === 1, 'no table#runs');

  await goto(page, `${base}${audit}`);
  const rows = await page.$$eval('#audit tr.audit-row', (trs) => trs.map((tr) => ({
    text: tr.innerText, sig: (tr.querySelector('td.sig') || { dataset: {} }).dataset.verified,
  })));
  const mine = rows.filter((x) => x.text.includes('bob') && x.text.includes('approve'));
  check(mine.length === 1, `the audit should show bob's one approval: ${JSON.stringify(rows)}`);
  check(mine[0].text.includes('127.0.0.1'), `the audit row should show the address the decision came from: ${mine[0].text}`);
  check(mine[0].text.includes('staging looks fine'), `the audit row should show the comment: ${mine[0].text}`);
  // The server signs its audit rows (api.audit_key_file): each one verifies.
  check(rows.every((x) => x.sig === 'yes'), `td.sig data-verified should be yes on every row: ${JSON.stringify(rows)}`);
}

async function concurrentRefused(ctx) {
  const { base, runs } = ctx.spec;
  const r = runs.race;
  const pages = [await as(ctx, 'bob'), await as(ctx, 'carol')];
  for (const p of pages) {
    await goto(p, `${base}${gatePath(r)}`);
    check(await text(p, '#gate-status') === 'open', `race gate should be open: ${await describe(p)}`);
  }
  await Promise.all(pages.map((p) => clickAndWait(p, '#approve')));
  const flashes = [];
  for (const p of pages) {
    flashes.push({ cls: await attr(p, '#flash', 'class'), text: await text(p, '#flash') });
  }
  const ok = flashes.filter((f) => f.cls === 'ok');
  const refused = flashes.filter((f) => f.cls === 'refused');
  check(ok.length === 1 && refused.length === 1, `one approval should pass and one be refused: ${JSON.stringify(flashes)}`);
  check(/not open|closed|already/i.test(refused[0].text), `the refusal should give the reason (gate closed): ${refused[0].text}`);
  for (const p of pages) {
    await goto(p, `${base}${gatePath(r)}`);
    check(await text(p, '#gate-status') === 'approved', `race gate status: ${await text(p, '#gate-status')}`);
    check(await count(p, DECISIONS) === 1, `exactly one approval: ${await text(p, '#approvals')}`);
  }
}

// An attacker's page on another origin that submits a decision form to
// sluice as soon as it loads (the "cross-site request" in CSRF).
function attackerServer(host, target, csrf) {
  const field = (n, v) => `<input type="hidden" name="${n}" value="${v}">`;
  const html = '<!doctype html><title>win a prize</title>'
    + `<form method="post" action="${target}">${field('decision', 'approve')}${field('comment', 'forged')}`
    + `${field('input.percent', '99')}${csrf === undefined ? '' : field('csrf', csrf)}</form>`
    + '<script>document.forms[0].submit()</script>';
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  return new Promise((resolve) => server.listen(0, host, () => resolve(server)));
}

// Waits until the page has finished loading a document of origin.
async function settle(page, origin) {
  const end = Date.now() + 20000;
  for (;;) {
    const ready = await page.evaluate(() => [location.origin, document.readyState]).catch(() => []);
    if (ready[0] === origin && ready[1] === 'complete') return;
    check(Date.now() < end, `the page did not come back to ${origin}: ${page.url()}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function csrfCrossSite(ctx) {
  const { base, runs } = ctx.spec;
  const r = runs.csrf;
  const target = `${base}${gatePath(r)}/decide`;
  const page = await as(ctx, 'dave');
  await goto(page, `${base}${gatePath(r)}`);
  check(await text(page, '#gate-status') === 'open', `csrf gate should be open: ${await describe(page)}`);
  const real = await attr(page, '#decide input[name="csrf"]', 'value');
  const attacks = [
    { name: 'cross-site (127.0.0.2), no token', host: '127.0.0.2' },
    { name: 'same-site other port, no token', host: '127.0.0.1' },
    { name: 'same-site other port, a made-up token', host: '127.0.0.1', csrf: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
    // Even dave's real token (as if it had leaked) is refused from another
    // origin: the Origin / Sec-Fetch-Site check stands on its own.
    { name: 'same-site other port, the real token', host: '127.0.0.1', csrf: real },
  ];
  for (const a of attacks) {
    const server = await attackerServer(a.host, target, a.csrf);
    try {
      const url = `http://${a.host}:${server.address().port}/`;
      const posted = page.waitForResponse((resp) => resp.url() === target && resp.request().method() === 'POST');
      await page.goto(url);
      const resp = await posted;
      await settle(page, base);
      // Cross-site, the browser withholds the SameSite cookie; same site it
      // sends it. Either way the POST is refused with 403 and the reason.
      const status = resp.status();
      check(status === 403, `${a.name}: the forged POST got ${status} ${resp.headers().location || ''}, want 403`);
      check(await count(page, '#flash.error') === 1, `${a.name}: the 403 page should say why in #flash.error: ${await describe(page)}`);
    } finally {
      await new Promise((res) => server.close(res));
    }
  }
  await goto(page, `${base}${gatePath(r)}`);
  check(await text(page, '#gate-status') === 'open', `the gate must still be open: ${await text(page, '#gate-status')}`);
  check(await count(page, DECISIONS) === 0, `nothing may have been decided: ${await text(page, '#approvals')}`);
}

// A reverse proxy in front of sluice that names the signed-in user in
// X-Forwarded-User, connecting to sluice from localAddress.
function forwarder(base, localAddress, user) {
  const target = new URL(base);
  const server = http.createServer((req, res) => {
    const headers = Object.assign({}, req.headers, { 'x-forwarded-user': user, 'x-forwarded-groups': 'release-leads' });
    const up = http.request({
      host: target.hostname, port: target.port, method: req.method, path: req.url, headers, localAddress,
    }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    up.on('error', (e) => {
      res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end(`proxy: ${e.message}`);
    });
    req.pipe(up);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function proxySignIn(ctx) {
  const { base, runs, proxy_user: user } = ctx.spec;
  // From the configured proxy address (127.0.0.1): signed in as the named user.
  const trusted = await forwarder(base, '127.0.0.1', user);
  // From any other address (127.0.0.3): the header is ignored, even naming bob.
  const rogue = await forwarder(base, '127.0.0.3', 'bob');
  try {
    const front = `http://127.0.0.1:${trusted.address().port}`;
    const page = await watchedPage(await ctx.browser.createBrowserContext());
    await page.goto(`${front}/gates`);
    check(page.url() === `${front}/gates`, `through the trusted proxy /gates should need no sign-in: ${await describe(page)}`);
    const links = await page.$$eval('#my-gates a.gate-link', (as2) => as2.map((a) => a.getAttribute('href')));
    check(links.includes(gatePath(runs.csrf)), `${user}'s gates through the proxy should include ${gatePath(runs.csrf)}: ${links}`);
    const shown = await page.evaluate(() => document.querySelector('nav').innerText);
    check(shown.includes(user), `the page should say who is signed in (${user}): ${shown}`);

    const other = `http://127.0.0.1:${rogue.address().port}`;
    const page2 = await watchedPage(await ctx.browser.createBrowserContext());
    await page2.goto(`${other}/gates`);
    check(pathOf(page2) === '/login', `a user header from an untrusted address must be ignored: ${await describe(page2)}`);
  } finally {
    await new Promise((res) => trusted.close(res));
    await new Promise((res) => rogue.close(res));
  }
}

async function oidcSignIn(ctx) {
  const { base, runs, oidc_user: user, payloads } = ctx.spec;
  // A forged callback (a code and state the server never issued) signs nobody in.
  const forged = await watchedPage(await ctx.browser.createBrowserContext());
  await forged.goto(`${base}/login/oidc/callback?code=forged&state=forged`);
  check(pathOf(forged) !== '/gates' && !(await sessionCookie(forged)),
    `a forged OIDC callback must not sign in: ${await describe(forged)}`);

  const context = await ctx.browser.createBrowserContext();
  const page = await watchedPage(context);
  await page.goto(`${base}/login`);
  check(await count(page, 'a#login-oidc') === 1, `no #login-oidc link on /login: ${await describe(page)}`);
  await clickAndWait(page, 'a#login-oidc');
  const hosts = new Set(page.seen.requests.map((q) => new URL(q.url).host));
  check(hosts.has(new URL(ctx.spec.idp).host),
    `the sign-in never went to the identity provider (requests to ${[...hosts]}): ${await describe(page)}`);
  check(pathOf(page) === '/gates', `OIDC sign-in should land on /gates: ${await describe(page)}`);
  check(await sessionCookie(page), 'no session cookie after OIDC sign-in');
  const links = await page.$$eval('#my-gates a.gate-link', (as2) => as2.map((a) => a.getAttribute('href')));
  for (const key of ['csrf', 'hostile']) {
    check(links.includes(gatePath(runs[key])), `${user}'s gates should include ${gatePath(runs[key])}: ${links}`);
  }
  check(!links.includes(gatePath(runs.approve)), `a decided gate is still listed: ${links}`);

  // Decide as that user: the comment carries the hostile strings, for hostile_inert.
  const r = runs.hostile;
  await goto(page, `${base}${gatePath(r)}`);
  await page.type('#decide textarea[name="comment"]', `ok ${payloads.join(' ')}`);
  await clickAndWait(page, '#approve');
  check(await count(page, '#flash.ok') === 1, `${user}'s approval: ${await describe(page)}`);
  const approvals = await text(page, '#approvals');
  check(approvals && approvals.includes(user), `#approvals should show ${user}: ${approvals}`);
  ctx.pages[user] = page;
}

const ALLOWED_STATIC = new Set(['/static/sluice.css', '/static/sluice.js', '/favicon.ico']);

// Loads url in a fresh page and checks that nothing hostile came alive.
async function inert(ctx, context, url, mustShow) {
  const { base, payloads } = ctx.spec;
  const page = await watchedPage(context);
  const resp = await page.goto(url, { waitUntil: 'networkidle0' });
  check(resp.status() === 200, `GET ${url}: ${resp.status()}`);
  const h = resp.headers();
  const csp = h['content-security-policy'] || '';
  check(/default-src 'none'/.test(csp) && /script-src 'self'/.test(csp) && !/unsafe-inline/.test(csp),
    `${url}: Content-Security-Policy is "${csp}"`);
  check(/frame-ancestors 'none'/.test(csp) || (h['x-frame-options'] || '').toUpperCase() === 'DENY', `${url}: may be framed`);
  check((h['x-content-type-options'] || '') === 'nosniff', `${url}: no X-Content-Type-Options: nosniff`);
  check(h['referrer-policy'], `${url}: no Referrer-Policy`);
  await new Promise((res) => setTimeout(res, 300));
  check(page.seen.dialogs.length === 0, `${url}: a dialog opened: ${page.seen.dialogs}`);
  const odd = page.seen.requests.filter((q) => {
    const u = new URL(q.url);
    return !(u.origin === base && (u.href === url || ALLOWED_STATIC.has(u.pathname)));
  });
  check(odd.length === 0, `${url}: unexpected requests: ${JSON.stringify(odd)}`);
  const alive = await page.evaluate(() => {
    const found = [];
    for (const el of document.querySelectorAll('*')) {
      const tag = el.tagName.toLowerCase();
      if (tag === 'script' && !(el.getAttribute('src') || '').startsWith('/static/')) found.push('inline <script>');
      if (['iframe', 'object', 'embed'].includes(tag)) found.push(`<${tag}>`);
      if (tag === 'img' && !(el.getAttribute('src') || '').startsWith('/static/')) found.push(`<img src=${el.getAttribute('src')}>`);
      for (const a of el.attributes) {
        if (/^on/i.test(a.name)) found.push(`${tag}[${a.name}]`);
      }
    }
    return found;
  });
  check(alive.length === 0, `${url}: injected elements: ${alive}`);
  if (mustShow) {
    const shown = await page.evaluate(() => document.body.innerText);
    for (const p of payloads) check(shown.includes(p), `${url}: should show ${p} as text; shows: ${shown.slice(0, 600)}`);
  }
  await page.close();
}

async function hostileInert(ctx) {
  const { base, runs } = ctx.spec;
  const r = runs.hostile;
  const bob = await as(ctx, 'bob');
  const context = bob.browserContext();
  await goto(bob, `${base}${gatePath(r)}`);
  const jobHref = await attr(bob, '#evidence .evidence-step[data-step="build"] a.job-link', 'href');
  check(jobHref, 'the hostile gate has no job link for build');
  await inert(ctx, context, `${base}${gatePath(r)}`, true);
  await inert(ctx, context, `${base}/runs/${r.run}`, true);
  await inert(ctx, context, `${base}${jobHref}`, true);
  await inert(ctx, context, `${base}/runs/${r.run}/audit`, ctx.pages[ctx.spec.oidc_user] !== undefined);
  await inert(ctx, context, `${base}/runs`, false);
  await inert(ctx, context, `${base}/gates`, false);
  await inert(ctx, context, `${base}/queues`, false);
}

async function signOut(ctx) {
  const { base, tokens } = ctx.spec;
  const context = await ctx.browser.createBrowserContext();
  const page = await signInWithToken(context, base, tokens.carol);
  const old = await sessionCookie(page);
  check(old, 'no session cookie');
  check(await attr(page, 'form#logout', 'method') === 'post', 'the sign-out form must POST');
  check((await attr(page, 'form#logout input[name="csrf"]', 'value') || '').length >= 16, 'the sign-out form has no CSRF token');
  await clickAndWait(page, SUBMIT('form#logout'));
  check(pathOf(page) === '/login', `sign-out should land on /login: ${await describe(page)}`);
  await page.goto(`${base}/gates`);
  check(pathOf(page) === '/login', `after sign-out /gates should need a sign-in: ${await describe(page)}`);

  // The old cookie, replayed from elsewhere, is dead.
  const replay = await watchedPage(await ctx.browser.createBrowserContext());
  await replay.setCookie({ name: old.name, value: old.value, domain: old.domain, path: old.path, httpOnly: true });
  await replay.goto(`${base}/gates`);
  check(pathOf(replay) === '/login', `the signed-out cookie still works: ${await describe(replay)}`);
}

module.exports = [
  ['sign_in_token', signInToken],
  ['gate_evidence', gateEvidence],
  ['approve_with_input', approveWithInput],
  ['run_proceeds', runProceeds],
  ['concurrent_refused', concurrentRefused],
  ['csrf_cross_site', csrfCrossSite],
  ['proxy_sign_in', proxySignIn],
  ['oidc_sign_in', oidcSignIn],
  ['hostile_inert', hostileInert],
  ['sign_out', signOut],
];
