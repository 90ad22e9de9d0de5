// Microsoft Graph through the Graph JS client (@microsoft/microsoft-graph-client).
'use strict';
const { PageIterator, BatchRequestContent, BatchResponseContent } =
  require('@microsoft/microsoft-graph-client');
const { test, assert, graph } = require('./lib');

test('graph', 'PageIterator visits every user once across $top pages', async () => {
  const client = graph();
  const first = await client.api('/users').top(7).select('id,displayName').get();
  assert.ok(first['@odata.nextLink'], 'a nextLink on the first page');
  const seen = new Set();
  let n = 0;
  await new PageIterator(client, first, (u) => { n++; seen.add(u.id); return true; }).iterate();
  assert.ok(n > 7, `more than one page (${n})`);
  assert.equal(seen.size, n, 'no user twice');
});

test('graph', '$search and $count with ConsistencyLevel: eventual', async () => {
  const r = await graph().api('/users').header('ConsistencyLevel', 'eventual')
    .search('"displayName:admin"').count(true).select('id,displayName').get();
  assert.equal(typeof r['@odata.count'], 'number');
  assert.equal(r['@odata.count'], r.value.length);
  assert.ok(r.value.every((u) => /admin/i.test(u.displayName)));
});

test('graph', '$batch: three requests, each answered with its own status', async () => {
  const client = graph();
  const batch = new BatchRequestContent([
    { id: '1', request: new Request('https://graph.microsoft.com/v1.0/organization', { method: 'GET' }) },
    { id: '2', request: new Request('https://graph.microsoft.com/v1.0/users?$top=1', { method: 'GET' }) },
    { id: '3', request: new Request('https://graph.microsoft.com/v1.0/users/no-such-user', { method: 'GET' }) },
  ]);
  const res = new BatchResponseContent(await client.api('/$batch').post(await batch.getContent()));
  const r1 = res.getResponseById('1');
  assert.equal(r1.status, 200);
  assert.equal(res.getResponseById('2').status, 200);
  assert.equal(res.getResponseById('3').status, 404);
});

const { ResponseType, RetryHandlerOptions } = require('@microsoft/microsoft-graph-client');
const crypto = require('node:crypto');
const fs = require('node:fs');
const { control, source, unique } = require('./lib');

// n users' userPrincipalNames and ids, in listing order.
async function someUsers(client, n) {
  return (await client.api('/users').top(n).select('id,userPrincipalName').get()).value;
}

async function newUser(client, extra = {}) {
  const nick = unique('compat');
  return client.api('/users').post({ accountEnabled: true, displayName: `Compat ${nick}`,
    mailNickname: nick, userPrincipalName: `${nick}@${source.initial_domain}`,
    passwordProfile: { password: 'Compat-Pa55w0rd!', forceChangePasswordNextSignIn: false }, ...extra });
}

test('graph', "$filter 'in (...)' works wherever eq does (also inside any())", async () => {
  const client = graph();
  const two = await someUsers(client, 2);
  const upns = two.map((u) => u.userPrincipalName);
  const r = await client.api('/users').filter(`userPrincipalName in ('${upns[0]}', '${upns[1]}')`)
    .select('id,userPrincipalName').get();
  assert.deepEqual(r.value.map((u) => u.userPrincipalName).sort(), [...upns].sort());
  const byId = await client.api('/users').filter(`id in ('${two[0].id}')`).get();
  assert.deepEqual(byId.value.map((u) => u.id), [two[0].id]);
  const u = await newUser(client);
  const any = await client.api('/users').filter(`proxyAddresses/any(x:x in ('SMTP:nobody@example.com'))`)
    .select('id').get();
  assert.deepEqual(any.value, []);
  assert.ok(u.id);
});

test('graph', '/users/delta: every user once, then a deltaLink with only what changed', async () => {
  const client = graph();
  let page = await client.api('/users/delta').select('id,displayName').get();
  const ids = new Set();
  let link;
  for (;;) {
    for (const u of page.value) ids.add(u.id);
    if (page['@odata.nextLink']) page = await client.api(page['@odata.nextLink']).get();
    else { link = page['@odata.deltaLink']; break; }
  }
  assert.match(link || '', /\/users\/delta\?.*\$deltatoken=/);
  const all = await client.api('/users/$count').header('ConsistencyLevel', 'eventual').get();
  assert.equal(ids.size, Number(all));
  const u = await newUser(client);
  const d = await client.api(link).get();
  assert.deepEqual(d.value.map((x) => x.id), [u.id]);
  await client.api(`/users/${u.id}`).delete();
  const d2 = await client.api(d['@odata.deltaLink']).get();
  assert.deepEqual(d2.value.map((x) => [x.id, x['@removed'] && x['@removed'].reason]), [[u.id, 'changed']]);
});

test('graph', 'delta on groups, applications and servicePrincipals; delta() with parentheses', async () => {
  const client = graph();
  for (const set of ['groups', 'applications', 'servicePrincipals']) {
    const r = await client.api(`/${set}/delta()`).top(5).get();
    assert.ok(Array.isArray(r.value), set);
    assert.ok(r['@odata.nextLink'] || r['@odata.deltaLink'], `${set}: a next or delta link`);
  }
});

test('graph', 'a valid Graph path the simulator does not serve is 501, never an id lookup', async () => {
  const client = graph();
  let err;
  try { await client.api('/directoryObjects/delta').get(); } catch (e) { err = e; }
  assert.ok(err, 'fails');
  assert.equal(err.statusCode, 501, err.message);
  err = undefined;
  try { await client.api('/users/getManagedAppPolicies').get(); } catch (e) { err = e; }
  assert.ok(err && err.statusCode !== 200);
});

test('graph', '$count=true without ConsistencyLevel is ignored on a list, not refused', async () => {
  const r = await graph().api('/users').count(true).top(3).get();
  assert.equal(r.value.length, 3);
});

test('graph', 'keyCredentials read back: key on a single-object $select, thumbprint, the certificate dates', async () => {
  const client = graph();
  const cert = new crypto.X509Certificate(fs.readFileSync(process.env.T2T_TEST_CERT));
  const app = await client.api('/applications').post({ displayName: unique('compat-cert-') });
  const key = cert.raw.toString('base64');
  await client.api(`/applications/${app.id}`).patch({ keyCredentials: [
    { type: 'AsymmetricX509Cert', usage: 'Verify', key, displayName: 'CN=t2t compat test' }] });
  const one = await client.api(`/applications/${app.id}`).select('keyCredentials').get();
  const k = one.keyCredentials[0];
  assert.equal(k.key, key, 'the key on $select of one object');
  const thumb = cert.fingerprint.replace(/:/g, '').toLowerCase();
  assert.equal(Buffer.from(k.customKeyIdentifier, 'base64').toString('hex'), thumb, 'thumbprint');
  assert.equal(new Date(k.startDateTime).getTime(), new Date(cert.validFrom).getTime());
  assert.equal(new Date(k.endDateTime).getTime(), new Date(cert.validTo).getTime());
  const list = await client.api('/applications').filter(`id eq '${app.id}'`).select('keyCredentials').get();
  assert.equal(list.value[0].keyCredentials[0].key, null, 'never on a list');
  const plain = await client.api(`/applications/${app.id}`).get();
  assert.equal(plain.keyCredentials[0].key, null, 'never without $select');
});

test('graph', 'property and query-option names are case-insensitive; myorganization and tenant-id paths', async () => {
  const client = graph();
  const nick = unique('compatcase');
  const u = await client.api('/users').post({ accountEnabled: true, DisplayName: 'Case Test',
    mailNickName: nick, userPrincipalName: `${nick}@${source.initial_domain}`,
    passwordProfile: { password: 'Compat-Pa55w0rd!' } });
  const got = await client.api(`/users/${u.id}?$SELECT=DisplayName,MailNickname`).get();
  assert.deepEqual([got.displayName, got.mailNickname], ['Case Test', nick]);
  const f = await client.api('/users').filter(`UserPrincipalName eq '${nick}@${source.initial_domain}'`).get();
  assert.deepEqual(f.value.map((x) => x.id), [u.id]);
  for (const prefix of ['/myorganization', `/${source.tenant_id}`]) {
    const r = await client.api(`${prefix}/users/${u.id}`).select('id').get();
    assert.equal(r.id, u.id, prefix);
  }
});

test('graph', 'wire: OData-Version 4.0, control information before value, odata.metadata=none', async () => {
  const client = graph();
  const res = await client.api('/users').top(2).select('id').responseType(ResponseType.RAW).get();
  assert.equal(res.headers.get('odata-version'), '4.0');
  const text = await res.text();
  const at = (s) => text.indexOf(s);
  assert.ok(at('"@odata.context"') >= 0 && at('"@odata.context"') < at('"value"'), text.slice(0, 200));
  assert.ok(at('"@odata.nextLink"') >= 0 && at('"@odata.nextLink"') < at('"value"'), text.slice(0, 300));
  const none = await client.api('/users').top(2).select('id')
    .header('Accept', 'application/json;odata.metadata=none').get();
  assert.equal(none['@odata.context'], undefined);
  assert.ok(none['@odata.nextLink'], 'the next link stays');
});

test('graph', 'wire: a 429 carries Retry-After and the throttling headers', async () => {
  await control('POST', '/_sim/faults', { faults: 'graph.429=1' });
  let res;
  try {
    res = await graph().api('/organization').middlewareOptions([new RetryHandlerOptions(0, 0)])
      .responseType(ResponseType.RAW).get();
  } finally {
    await control('POST', '/_sim/faults', { faults: '' });
  }
  assert.equal(res.status, 429);
  assert.ok(Number(res.headers.get('retry-after')) > 0);
  assert.match(res.headers.get('x-ms-throttle-scope') || '', /^Tenant_Application\//);
  assert.ok(res.headers.get('x-ms-throttle-information'));
  assert.equal(res.headers.get('odata-version'), '4.0');
  assert.equal((await res.json()).error.code, 'TooManyRequests');
});

test('graph', '$expand of members, owners, memberOf and appRoleAssignments', async () => {
  const client = graph();
  const [a, b] = await someUsers(client, 2);
  const nick = unique('compatgrp');
  const g = await client.api('/groups').post({ displayName: nick, mailEnabled: false, mailNickname: nick,
    securityEnabled: true,
    'members@odata.bind': [a.id, b.id].map((id) => `https://graph.microsoft.com/v1.0/users/${id}`),
    'owners@odata.bind': [`https://graph.microsoft.com/v1.0/users/${a.id}`] });
  const e = await client.api(`/groups/${g.id}`).expand('members($select=id,userPrincipalName)').get();
  assert.deepEqual(e.members.map((m) => m.id).sort(), [a.id, b.id].sort());
  assert.equal(e.members[0]['@odata.type'], '#microsoft.graph.user');
  const o = await client.api(`/groups/${g.id}`).expand('owners').select('id,displayName').get();
  assert.deepEqual(o.owners.map((m) => m.id), [a.id]);
  const m = await client.api(`/users/${a.id}`).expand('memberOf').get();
  assert.ok(m.memberOf.some((x) => x.id === g.id), 'memberOf has the group');
  const sp = await client.api(`/servicePrincipals/${source.sp_id}`).expand('appRoleAssignments').get();
  assert.ok(sp.appRoleAssignments.length > 0, 'the admin app has consented roles');
  const l = await client.api('/groups').filter(`id eq '${g.id}'`).expand('members').get();
  assert.equal(l.value[0].members.length, 2);
  const app = await client.api('/applications').post({ displayName: unique('compat-own-') });
  assert.deepEqual((await client.api(`/applications/${app.id}`).expand('owners').get()).owners, []);
});
