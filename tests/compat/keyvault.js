// Key Vault data plane through @azure/keyvault-secrets.
'use strict';
const { SecretClient } = require('@azure/keyvault-secrets');
const { test, assert, credential } = require('./lib');
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
