// Key Vault data plane through @azure/keyvault-secrets.
'use strict';
const { SecretClient } = require('@azure/keyvault-secrets');
const { test, assert, credential, rejects, source } = require('./lib');
const { vault } = require('./arm');

test('keyvault', 'the 401 challenge, then set and get a secret', async () => {
  const { vault: v } = await vault();
  const client = new SecretClient(v.properties.vaultUri, credential());
  const set = await client.setSecret('compat-one', 'value-1');
  assert.equal(set.value, 'value-1');
  const got = await client.getSecret('compat-one');
  assert.equal(got.value, 'value-1');
  assert.equal(got.properties.version, set.properties.version);
});

const SECRETS_OFFICER = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7';
const SECRETS_USER = '4633458b-17de-408a-b874-0445c86b69e6';

test('keyvault', 'RBAC vault: management-plane Owner alone is 403 Forbidden / ForbiddenByRbac', async () => {
  const { vault: v } = await require('./arm').rbacVault();
  const client = new SecretClient(v.properties.vaultUri, credential());
  const err = await rejects(client.setSecret('rbac-one', 'v'), { status: 403, code: 'Forbidden' });
  assert.match(err.message, /Caller is not authorized to perform action on resource/);
  assert.equal(err.details.error.innerError.code, 'ForbiddenByRbac');
  assert.match(err.details.error.message, /Action: 'Microsoft.KeyVault\/vaults\/secrets\/setSecret\/action'/);
});

test('keyvault', 'RBAC vault: Secrets User reads, Secrets Officer at the vault scope writes', async () => {
  const arm = require('./arm');
  const { vault: v } = await arm.rbacVault();
  const client = new SecretClient(v.properties.vaultUri, credential());
  await arm.assignRole(v.id, SECRETS_USER, source.sp_id);
  await rejects(client.setSecret('rbac-two', 'v'), { status: 403, code: 'Forbidden' });
  await arm.assignRole(v.id, SECRETS_OFFICER, source.sp_id);
  const set = await client.setSecret('rbac-two', 'value-2');
  assert.equal((await client.getSecret('rbac-two')).value, 'value-2');
  assert.equal(set.name, 'rbac-two');
});

test('keyvault', 'versions list, properties update (PATCH), soft delete, recover and purge', async () => {
  const { vault: v } = await vault();
  const client = new SecretClient(v.properties.vaultUri, credential());
  const one = await client.setSecret('compat-life', 'value-1');
  const two = await client.setSecret('compat-life', 'value-1b');
  const versions = [];
  for await (const p of client.listPropertiesOfSecretVersions('compat-life')) versions.push(p.version);
  assert.deepEqual(versions.sort(), [one.properties.version, two.properties.version].sort());
  const upd = await client.updateSecretProperties('compat-life', two.properties.version,
    { enabled: true, tags: { owner: 't2t' }, contentType: 'text/plain' });
  assert.deepEqual(upd.tags, { owner: 't2t' });
  assert.equal(upd.contentType, 'text/plain');
  const del = await (await client.beginDeleteSecret('compat-life')).pollUntilDone();
  assert.match(del.recoveryId, /\/deletedsecrets\/compat-life$/);
  await rejects(client.getSecret('compat-life'), { status: 404, code: 'SecretNotFound' });
  assert.equal((await client.getDeletedSecret('compat-life')).name, 'compat-life');
  await (await client.beginRecoverDeletedSecret('compat-life')).pollUntilDone();
  assert.equal((await client.getSecret('compat-life')).value, 'value-1b');
  await (await client.beginDeleteSecret('compat-life')).pollUntilDone();
  await client.purgeDeletedSecret('compat-life');
  await rejects(client.getDeletedSecret('compat-life'), { status: 404 });
});
