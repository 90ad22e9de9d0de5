// Shared set-up of the client-compatibility tests: Microsoft's own Node libraries talk to a
// running `t2t sim` through its CONNECT proxy (HTTPS_PROXY) and trust its CA
// (NODE_EXTRA_CA_CERTS), with the real host names.  test_compat.sh starts the simulator and
// sets T2T_SIM_PROFILE to the profile it printed (`t2t sim --json`).
'use strict';
const fs = require('node:fs');
const assert = require('node:assert/strict');
const { setGlobalDispatcher, EnvHttpProxyAgent } = require('undici');
// fetch (the Graph client uses it) honours HTTPS_PROXY / NO_PROXY only through this dispatcher;
// the Azure SDK pipelines and MSAL read the proxy themselves.
setGlobalDispatcher(new EnvHttpProxyAgent());

const { ClientSecretCredential } = require('@azure/identity');
const { Client } = require('@microsoft/microsoft-graph-client');
const { TokenCredentialAuthenticationProvider } =
  require('@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials');

const profile = JSON.parse(fs.readFileSync(process.env.T2T_SIM_PROFILE, 'utf8'));
const source = profile.tenants[profile.source || 'contoso'];

const tests = [];
// test(family, name, fn): one TAP line "ok - family: name" per test, in the order added.
function test(family, name, fn) { tests.push({ name: `${family}: ${name}`, fn }); }

async function run(only) {
  let failed = 0;
  for (const t of tests) {
    if (only && !t.name.includes(only)) continue;
    try {
      await t.fn();
      console.log(`ok - ${t.name}`);
    } catch (e) {
      failed++;
      console.log(`not ok - ${t.name}`);
      const text = (e && (e.stack || e.message)) || String(e);
      for (const line of text.split('\n').slice(0, 12)) console.log(`  # ${line}`);
      if (e && e.response && e.response.bodyAsText) console.log(`  # body: ${e.response.bodyAsText}`);
      if (e && e.body) console.log(`  # body: ${typeof e.body === 'string' ? e.body : JSON.stringify(e.body)}`);
    }
  }
  return failed;
}

// The seeded admin app of a tenant as an @azure/identity credential.
function credential(t = source) {
  return new ClientSecretCredential(t.tenant_id, t.client_id, t.client_secret);
}

// A Graph client (the Graph JS SDK) for the tenant; extra client options merged in.
function graph(t = source, options = {}) {
  const authProvider = new TokenCredentialAuthenticationProvider(credential(t),
    { scopes: ['https://graph.microsoft.com/.default'] });
  return Client.initWithMiddleware({ authProvider, ...options });
}

// The simulator's control API (test set-up only: faults, clock, state), with this instance's
// key from the 0600 header file `t2t sim` writes.
const [ctlName, ctlValue] = fs.readFileSync(profile.control_header_file, 'utf8').trim().split(/:\s*/);
async function control(method, path, body) {
  const res = await fetch(profile.base_url + path, {
    method, headers: { 'content-type': 'application/json', [ctlName]: ctlValue },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

// The claims of a JWT (decoded, not verified).
function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

// A unique name per run (the simulator's state lives as long as the test run).
let seq = 0;
function unique(prefix) { seq++; return `${prefix}${process.pid % 10000}x${seq}`; }

// await rejects(promise, {status, code}): the call failed with that HTTP status / error code.
async function rejects(promise, want) {
  let err;
  try { await promise; } catch (e) { err = e; }
  assert.ok(err, `expected the call to fail with ${JSON.stringify(want)}`);
  const status = err.statusCode ?? err.status ?? (err.response && err.response.status);
  if (want.status !== undefined) assert.equal(status, want.status, `status (${err.message})`);
  if (want.code !== undefined) assert.equal(err.code, want.code, `code (${err.message})`);
  return err;
}

module.exports = { assert, test, run, profile, source, credential, graph, control, claims, unique,
                   rejects };
