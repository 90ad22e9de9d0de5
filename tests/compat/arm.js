// Azure Resource Manager through @azure/arm-resources and @azure/arm-keyvault.
'use strict';
const { ResourceManagementClient } = require('@azure/arm-resources');
const { KeyVaultManagementClient } = require('@azure/arm-keyvault');
const { test, assert, source, credential, unique, rejects } = require('./lib');

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

test('arm', 'resourceGroups.checkExistence: HEAD is 204 when it exists, 404 when not', async () => {
  const { rg } = await vault();
  assert.equal((await resources().resourceGroups.checkExistence(rg)).body, true);
  assert.equal((await resources().resourceGroups.checkExistence(unique('rg-none-'))).body, false);
});

test('arm', 'resourceGroups.list pages every group of the subscription', async () => {
  const { rg } = await vault();
  const names = [];
  for await (const g of resources().resourceGroups.list()) names.push(g.name);
  assert.ok(names.includes(rg), `${rg} in ${names}`);
});

test('arm', 'a location that is not an Azure region is 400 LocationNotAvailableForResourceGroup', async () => {
  const err = await rejects(resources().resourceGroups.createOrUpdate(unique('rg-narnia-'),
    { location: 'Narnia' }), { status: 400, code: 'LocationNotAvailableForResourceGroup' });
  assert.match(err.message, /'Narnia' is not available/);
  const r = await resources().resourceGroups.createOrUpdate(unique('rg-display-'), { location: 'West Europe' });
  assert.equal(r.properties.provisioningState, 'Succeeded');
});

test('arm', 'vaults.checkNameAvailability: taken, free and invalid names', async () => {
  const { name } = await vault();
  const taken = await keyvault().vaults.checkNameAvailability({ name, type: 'Microsoft.KeyVault/vaults' });
  assert.deepEqual([taken.nameAvailable, taken.reason], [false, 'AlreadyExists']);
  const free = await keyvault().vaults.checkNameAvailability({ name: unique('kvfree'), type: 'Microsoft.KeyVault/vaults' });
  assert.equal(free.nameAvailable, true);
  const bad = await keyvault().vaults.checkNameAvailability({ name: '1-bad--', type: 'Microsoft.KeyVault/vaults' });
  assert.deepEqual([bad.nameAvailable, bad.reason], [false, 'AccountNameInvalid']);
});

test('arm', 'vaults.listByResourceGroup and vaults.list (through /resources) find the vault', async () => {
  const { rg, name } = await vault();
  const inRg = [];
  for await (const v of keyvault().vaults.listByResourceGroup(rg)) inRg.push(v.name);
  assert.deepEqual(inRg, [name]);
  const all = [];
  for await (const v of keyvault().vaults.list()) all.push(v);
  const mine = all.find((v) => v.name === name);
  assert.ok(mine, `${name} listed`);
  assert.equal(mine.type, 'Microsoft.KeyVault/vaults');
});

module.exports = { vault };

// An RBAC vault (enableRbacAuthorization) in its own resource group, made once.
let rbac;
async function rbacVault() {
  if (rbac) return rbac;
  const rg = unique('rg-rbac-');
  await resources().resourceGroups.createOrUpdate(rg, { location: 'westeurope' });
  const name = unique('kvr');
  const v = await keyvault().vaults.beginCreateOrUpdateAndWait(rg, name, {
    location: 'westeurope',
    properties: { tenantId: source.tenant_id, sku: { family: 'A', name: 'standard' },
                  enableRbacAuthorization: true },
  });
  rbac = { rg, name, vault: v };
  return rbac;
}

// assignRole(scope, roleGuid, principalId): an Azure RBAC role assignment through the SDK's
// generic resource call (PUT {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}).
async function assignRole(scope, role, principalId) {
  const id = `${scope}/providers/Microsoft.Authorization/roleAssignments/${require('node:crypto').randomUUID()}`;
  return resources().resources.beginCreateOrUpdateByIdAndWait(id, '2022-04-01', { properties: {
    roleDefinitionId: `/subscriptions/${sub}/providers/Microsoft.Authorization/roleDefinitions/${role}`,
    principalId, principalType: 'ServicePrincipal' } });
}

module.exports.rbacVault = rbacVault;
module.exports.assignRole = assignRole;
