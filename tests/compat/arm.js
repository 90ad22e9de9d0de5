// Azure Resource Manager through @azure/arm-resources and @azure/arm-keyvault.
'use strict';
const { ResourceManagementClient } = require('@azure/arm-resources');
const { KeyVaultManagementClient } = require('@azure/arm-keyvault');
const { test, assert, source, credential, unique } = require('./lib');

const sub = source.subscription;
const resources = () => new ResourceManagementClient(credential(), sub);
const keyvault = () => new KeyVaultManagementClient(credential(), sub);

// A resource group and an access-policy vault made once, for this file's tests.
let made;
async function vault() {
  if (made) return made;
  const rg = unique('rg-compat-');
  await resources().resourceGroups.createOrUpdate(rg, { location: 'westeurope' });
  const name = unique('kvc');
  const v = await keyvault().vaults.beginCreateOrUpdateAndWait(rg, name, {
    location: 'westeurope',
    properties: { tenantId: source.tenant_id, sku: { family: 'A', name: 'standard' },
                  accessPolicies: [{ tenantId: source.tenant_id, objectId: source.sp_id,
                    permissions: { secrets: ['get', 'list', 'set', 'delete', 'purge', 'recover'] } }] },
  });
  made = { rg, name, vault: v };
  return made;
}

test('arm', 'resource group create, then read', async () => {
  const rg = unique('rg-compat-');
  const r = await resources().resourceGroups.createOrUpdate(rg, { location: 'westeurope' });
  assert.equal(r.name, rg);
  assert.equal(r.properties.provisioningState, 'Succeeded');
  assert.equal((await resources().resourceGroups.get(rg)).location, 'westeurope');
});

test('arm', 'vault create is a long-running operation the SDK polls to Succeeded', async () => {
  const { vault: v } = await vault();
  assert.equal(v.properties.provisioningState, 'Succeeded');
  assert.match(v.properties.vaultUri, /^https:\/\/.*\.vault\.azure\.net\/$/);
});

module.exports = { vault };
