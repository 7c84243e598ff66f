// screenshots.js: every page at desktop (1280x800) and phone (390x844)
// widths, written as PNG files NAME-desktop.png / NAME-phone.png into the
// spec's screenshot directory (in the build tree).  On the way it checks
// what makes a page usable on a phone: a viewport meta tag and no
// horizontal scrolling of the whole page.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { check, watchedPage, describe, signInWithToken } = require('./lib');

const WIDTHS = [
  { name: 'desktop', viewport: { width: 1280, height: 800 } },
  { name: 'phone', viewport: { width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 1 } },
];

// The page names are the contract's; the C test expects exactly these files.
function pages(spec) {
  const { runs } = spec;
  return [
    ['login', '/login', null],
    ['gates', '/gates', 'bob'],
    ['gate', `/runs/${runs.csrf.run}/gates/${runs.csrf.gate}`, 'bob'],
    ['run', `/runs/${runs.approve.run}`, 'bob'],
    ['runs', '/runs', 'bob'],
    ['audit', `/runs/${runs.approve.run}/audit`, 'bob'],
    ['queues', '/queues', 'bob'],
  ];
}

async function screenshots(ctx) {
  const { base, tokens, screenshots: dir, queue } = ctx.spec;
  fs.mkdirSync(dir, { recursive: true });
  const signedOut = await watchedPage(await ctx.browser.createBrowserContext());
  const bob = await signInWithToken(await ctx.browser.createBrowserContext(), base, tokens.bob);
  for (const w of WIDTHS) {
    for (const [name, url, user] of pages(ctx.spec)) {
      const page = user ? bob : signedOut;
      await page.setViewport(w.viewport);
      const resp = await page.goto(`${base}${url}`, { waitUntil: 'load' });
      check(resp.status() === 200, `${name} (${url}): status ${resp.status()}: ${await describe(page)}`);
      check(new URL(page.url()).pathname === url, `${name}: expected ${url}, got ${page.url()}`);
      check(await page.$('meta[name="viewport"]'), `${name}: no <meta name="viewport">`);
      await page.screenshot({ path: path.join(dir, `${name}-${w.name}.png`), fullPage: true });
      // Against the device's width, not innerWidth: a mobile browser zooms
      // out to fit content that is too wide, and innerWidth grows with it.
      const wide = await page.evaluate((max) => {
        const over = [...document.body.querySelectorAll('*')]
          .filter((e) => e.getBoundingClientRect().right > max && e.children.length === 0)
          .map((e) => `<${e.tagName.toLowerCase()} class="${e.className}">${(e.textContent || '').slice(0, 40)}`);
        return { width: document.documentElement.scrollWidth, over: over.slice(0, 3) };
      }, w.viewport.width);
      check(wide.width <= w.viewport.width,
        `${name} at ${w.name} width scrolls sideways (${wide.width} px wide for ${w.viewport.width}; too wide: ${wide.over.join(', ')})`);
      if (name === 'queues') {
        const rows = await page.$$eval('#queues tr.queue', (trs) => trs.map((tr) => tr.innerText));
        check(rows.some((t) => t.includes(queue)), `the Queues page should list ${queue}: ${rows}`);
      }
    }
  }
}

module.exports = { screenshots, pages, WIDTHS };
