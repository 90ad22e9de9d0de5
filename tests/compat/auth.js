// Entra ID token endpoint through @azure/msal-node and @azure/identity.
'use strict';
const msal = require('@azure/msal-node');
const { test, assert, source, credential, claims } = require('./lib');

function app(t = source) {
  return new msal.ConfidentialClientApplication({
    auth: { clientId: t.client_id, clientSecret: t.client_secret,
            authority: `https://login.microsoftonline.com/${t.tenant_id}` },
    system: { proxyUrl: process.env.HTTPS_PROXY },   // msal-node reads no proxy variable itself
  });
}

test('auth', 'msal-node client credentials for Graph carry the consented roles', async () => {
  const r = await app().acquireTokenByClientCredential(
    { scopes: ['https://graph.microsoft.com/.default'] });
  assert.ok(r && r.accessToken, 'an access token');
  const c = claims(r.accessToken);
  assert.equal(c.tid, source.tenant_id);
  assert.equal(c.appid, source.client_id);
  assert.ok(Array.isArray(c.roles) && c.roles.length > 0, 'roles claim');
});

test('auth', 'msal-node: a wrong secret is AADSTS7000215 invalid_client', async () => {
  const bad = { ...source, client_secret: 'not-the-secret' };
  let err;
  try { await app(bad).acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] }); }
  catch (e) { err = e; }
  assert.ok(err, 'it fails');
  assert.equal(err.errorCode, 'invalid_client');
  assert.match(err.errorMessage, /AADSTS7000215/);
});

test('auth', '@azure/identity ClientSecretCredential for ARM and Key Vault', async () => {
  for (const scope of ['https://management.azure.com/.default', 'https://vault.azure.net/.default']) {
    const t = await credential().getToken(scope);
    assert.ok(t && t.token && t.expiresOnTimestamp > Date.now(), scope);
    assert.equal(claims(t.token).aud, scope.replace('/.default', ''));
  }
});

// The v1 access-token shape (Microsoft's access-token claims reference): what every app-only
// token carries.  app_displayname is read by widely used tools (its absence crashed one).
test('auth', 'an app-only token has every claim of the documented v1 shape', async () => {
  const r = await app().acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] });
  const c = claims(r.accessToken);
  for (const k of ['aud', 'iss', 'iat', 'nbf', 'exp', 'aio', 'app_displayname', 'appid', 'appidacr',
                   'idp', 'idtyp', 'oid', 'rh', 'roles', 'sub', 'tid', 'uti', 'ver', 'xms_tcdt']) {
    assert.ok(c[k] !== undefined, `claim ${k} (have ${Object.keys(c).join(',')})`);
  }
  assert.equal(c.ver, '1.0');
  assert.equal(c.idtyp, 'app');
  assert.equal(c.appidacr, '1');
  assert.equal(c.sub, c.oid);
  assert.equal(c.iss, `https://sts.windows.net/${source.tenant_id}/`);
  assert.equal(c.idp, c.iss);
  assert.equal(typeof c.app_displayname, 'string');
  assert.ok(c.app_displayname.length > 0);
  assert.equal(c.scp, undefined, 'no delegated scopes in an app token');
  const h = JSON.parse(Buffer.from(r.accessToken.split('.')[0], 'base64url').toString());
  assert.deepEqual([h.typ, h.alg, h.x5t], ['JWT', 'RS256', h.kid]);
});
