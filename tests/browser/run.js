#!/usr/bin/env node
// run.js: runs the browser scenarios (scenarios.js, then screenshots.js)
// against a prepared `sluice serve` in one headless Chromium and writes a
// JSON report: an object mapping each scenario's name to "ok" or
// "FAILED: why".  Exit status 0 when every scenario passed, 1 when one
// failed, 2 when the spec is unusable.  tests/test_browser.c prepares the
// servers, the runs and the spec, runs this, and asserts on both.
//
// Usage: node run.js SPEC.json [SCENARIO...]   (no names: all of them)
//
// SPEC.json holds: base (sluice's URL), idp (the test identity provider's
// URL), chromium (the binary), screenshots (a directory), report (the
// report's path), tokens ({user: API token}), runs ({approve, race, csrf,
// hostile}: {run, gate, pipeline, instructions, build_marker}), queue,
// oidc_user, proxy_user (signed in by the identity provider, by the reverse
// proxy header), payloads (the hostile strings).
'use strict';

const fs = require('node:fs');

async function main() {
  if (process.argv.length < 3) {
    process.stderr.write('usage: node run.js SPEC.json [SCENARIO...]\n');
    return 2;
  }
  const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  for (const key of ['base', 'idp', 'chromium', 'screenshots', 'report', 'tokens', 'runs', 'queue', 'oidc_user', 'proxy_user', 'payloads']) {
    if (spec[key] === undefined) {
      process.stderr.write(`run.js: the spec has no "${key}"\n`);
      return 2;
    }
  }
  if (!fs.existsSync(spec.chromium)) {
    process.stderr.write(`run.js: no Chromium at ${spec.chromium}: install Debian's chromium (scripts/deps.sh)\n`);
    return 2;
  }
  const lib = require('./lib');
  const { screenshots } = require('./screenshots');
  const all = [...require('./scenarios'), ['screenshots', screenshots]];
  const only = process.argv.slice(3);
  const chosen = only.length ? all.filter(([name]) => only.includes(name)) : all;

  const report = {};
  const write = () => fs.writeFileSync(spec.report, `${JSON.stringify(report, null, 2)}\n`);
  const browser = await lib.launch(spec.chromium);
  const ctx = { spec, browser, pages: {} };
  let failed = 0;
  try {
    for (const [name, fn] of chosen) {
      const t0 = Date.now();
      try {
        await fn(ctx);
        report[name] = 'ok';
      } catch (e) {
        failed++;
        report[name] = `FAILED: ${e instanceof lib.CheckFailed ? e.message : e.stack}`;
      }
      process.stdout.write(`browser: ${name}: ${report[name]} (${Date.now() - t0} ms)\n`);
      write();
    }
  } finally {
    await lib.close(browser);
  }
  return failed ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  process.stderr.write(`run.js: ${e.stack}\n`);
  process.exit(2);
});
