#!/usr/bin/env node
// idp.js: a small OpenID Connect identity provider for the browser tests,
// on loopback only.  It serves what an OIDC relying party needs for the
// authorization code flow with PKCE:
//
//   GET  /.well-known/openid-configuration   the discovery document
//   GET  /jwks                                its one public signing key
//   GET  /authorize                           signs in the fixed test user
//                                             (no form: auto-approve) and
//                                             redirects back with a code
//   POST /token                               code + PKCE verifier + client
//                                             secret -> a signed ID token
//
// It is strict the way a real provider is, so that a relying party that
// skips a step fails here: the redirect URI must be the registered one, the
// code challenge must be S256, state and nonce must be sent, a code is good
// once and for a minute, the client must authenticate with its secret
// (HTTP Basic or the form), and SHA-256 of the verifier must be the
// challenge.  Every decision is logged as one line on stdout
// (`idp: event=... ok|refused reason=...`), which the C test reads.
//
// Usage: node idp.js --port-file FILE --client-id ID --client-secret-file FILE
//                    --redirect-uri URL [--user NAME] [--groups A,B] [--alg RS256|ES256]
// It listens on 127.0.0.1, an ephemeral port, and writes that port into
// FILE once it accepts connections.  SIGTERM stops it.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');

function parseArgs(argv) {
  const opts = { user: 'olivia', groups: 'release-leads', alg: 'RS256' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (argv[i + 1] === undefined) throw new Error(`idp: ${argv[i]} needs a value`);
    opts[key] = argv[i + 1];
  }
  for (const need of ['portFile', 'clientId', 'clientSecretFile', 'redirectUri']) {
    if (!opts[need]) throw new Error(`idp: --${need.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} is required`);
  }
  if (opts.alg !== 'RS256' && opts.alg !== 'ES256') throw new Error(`idp: --alg must be RS256 or ES256`);
  opts.clientSecret = fs.readFileSync(opts.clientSecretFile, 'utf8').trim();
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const keys = opts.alg === 'RS256'
  ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
  : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const kid = crypto.randomBytes(8).toString('hex');
const codes = new Map(); // code -> what the authorization request said
let issuer = '';

function log(event, outcome, detail) {
  const extra = Object.entries(detail || {}).map(([k, v]) => ` ${k}=${JSON.stringify(String(v))}`).join('');
  process.stdout.write(`idp: event=${event} ${outcome}${extra}\n`);
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function signJwt(payload) {
  const header = { alg: opts.alg, typ: 'JWT', kid };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const sig = opts.alg === 'RS256'
    ? crypto.sign('sha256', Buffer.from(input), keys.privateKey)
    : crypto.sign('sha256', Buffer.from(input), { key: keys.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64url(sig)}`;
}

function send(res, status, type, body, headers) {
  res.writeHead(status, Object.assign({ 'Content-Type': type, 'Cache-Control': 'no-store' }, headers || {}));
  res.end(body);
}

const json = (res, status, obj) => send(res, status, 'application/json', JSON.stringify(obj));

function discovery(res) {
  json(res, 200, {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
    response_types_supported: ['code'],
    grant_types_supported: ['authorization_code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [opts.alg],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    scopes_supported: ['openid', 'profile', 'groups'],
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nonce', 'preferred_username', 'name', 'groups'],
  });
  log('discovery', 'ok');
}

function jwks(res) {
  const jwk = keys.publicKey.export({ format: 'jwk' });
  json(res, 200, { keys: [Object.assign(jwk, { kid, use: 'sig', alg: opts.alg })] });
  log('jwks', 'ok');
}

// The authorization endpoint: a refused request is answered here with 400,
// never redirected to a URI that was not registered.
function authorize(res, q) {
  const refuse = (reason) => {
    log('authorize', 'refused', { reason });
    send(res, 400, 'text/plain; charset=utf-8', `authorization refused: ${reason}\n`);
  };
  if (q.get('client_id') !== opts.clientId) return refuse('unknown client_id');
  if (q.get('redirect_uri') !== opts.redirectUri) return refuse(`redirect_uri is not the registered one: ${q.get('redirect_uri')}`);
  if (q.get('response_type') !== 'code') return refuse('response_type must be code');
  if (!(q.get('scope') || '').split(' ').includes('openid')) return refuse('scope must include openid');
  if (!q.get('state')) return refuse('no state');
  if (!q.get('nonce')) return refuse('no nonce');
  if (q.get('code_challenge_method') !== 'S256') return refuse('code_challenge_method must be S256');
  if (!/^[A-Za-z0-9_-]{43}$/.test(q.get('code_challenge') || '')) return refuse('code_challenge is not a base64url SHA-256');
  const code = crypto.randomBytes(24).toString('base64url');
  codes.set(code, {
    challenge: q.get('code_challenge'), nonce: q.get('nonce'), redirectUri: q.get('redirect_uri'),
    scope: q.get('scope'), expires: Date.now() + 60000, used: false,
  });
  const to = new URL(opts.redirectUri);
  to.searchParams.set('code', code);
  to.searchParams.set('state', q.get('state'));
  log('authorize', 'ok', { user: opts.user, scope: q.get('scope') });
  send(res, 302, 'text/plain', '', { Location: to.toString() });
}

function clientAuth(req, form) {
  const h = req.headers.authorization || '';
  if (h.startsWith('Basic ')) {
    const raw = Buffer.from(h.slice(6), 'base64').toString('utf8');
    const i = raw.indexOf(':');
    const dec = (s) => decodeURIComponent(s.replace(/\+/g, ' '));
    return { id: dec(raw.slice(0, i)), secret: dec(raw.slice(i + 1)), how: 'basic' };
  }
  return { id: form.get('client_id'), secret: form.get('client_secret'), how: 'post' };
}

function token(req, res, body) {
  const form = new URLSearchParams(body);
  const refuse = (error, reason) => {
    log('token', 'refused', { reason });
    json(res, 400, { error, error_description: reason });
  };
  const client = clientAuth(req, form);
  if (client.id !== opts.clientId || client.secret !== opts.clientSecret) return refuse('invalid_client', 'bad client credentials');
  if (form.get('grant_type') !== 'authorization_code') return refuse('unsupported_grant_type', 'grant_type must be authorization_code');
  const grant = codes.get(form.get('code') || '');
  if (!grant) return refuse('invalid_grant', 'unknown code');
  if (grant.used) return refuse('invalid_grant', 'code already used');
  grant.used = true;
  if (Date.now() > grant.expires) return refuse('invalid_grant', 'code expired');
  if (form.get('redirect_uri') !== grant.redirectUri) return refuse('invalid_grant', 'redirect_uri differs from the authorization request');
  const verifier = form.get('code_verifier') || '';
  if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier)) return refuse('invalid_grant', 'code_verifier missing or malformed');
  if (b64url(crypto.createHash('sha256').update(verifier).digest()) !== grant.challenge) {
    return refuse('invalid_grant', 'PKCE verifier does not match the challenge');
  }
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: issuer, sub: `sub-${opts.user}`, aud: opts.clientId, iat: now, exp: now + 300,
    nonce: grant.nonce, preferred_username: opts.user, name: `Test user ${opts.user}`,
    groups: opts.groups ? opts.groups.split(',') : [],
  };
  json(res, 200, {
    access_token: crypto.randomBytes(24).toString('base64url'), token_type: 'Bearer', expires_in: 300,
    id_token: signJwt(claims), scope: grant.scope,
  });
  log('token', 'ok', { user: opts.user, client_auth: client.how, pkce: 'S256' });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, issuer);
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => {
    body += chunk;
    if (body.length > 65536) req.destroy();
  });
  req.on('end', () => {
    if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') return discovery(res);
    if (req.method === 'GET' && url.pathname === '/jwks') return jwks(res);
    if (req.method === 'GET' && url.pathname === '/authorize') return authorize(res, url.searchParams);
    if (req.method === 'POST' && url.pathname === '/token') return token(req, res, body);
    log('request', 'refused', { reason: `no route ${req.method} ${url.pathname}` });
    return send(res, 404, 'text/plain', 'not found\n');
  });
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}`;
  fs.writeFileSync(`${opts.portFile}.tmp`, `${port}\n`);
  fs.renameSync(`${opts.portFile}.tmp`, opts.portFile);
  log('listening', 'ok', { issuer, alg: opts.alg });
});

process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
