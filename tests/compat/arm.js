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
