-- The simulated ARM (t2t.sim.arm) and Key Vault data plane (t2t.sim.keyvault) called directly
-- with a hand-built state and a stub sim: the legacy setup's calls (ms-setup-and-prep.md §1.8,
-- wire.md §4) with their statuses, shapes and access checks.
local lu = require "luaunit"
local cjson = require "cjson"
local arm = require "t2t.sim.arm"
local kv = require "t2t.sim.keyvault"

local T1 = "11111111-1111-4111-8111-111111111111"
local SUB = "33333333-3333-4333-8333-333333333333"
local ADMIN_OID = "44444444-4444-4444-8444-444444444444"
local EXO_OID = "55555555-5555-4555-8555-555555555555"
local OTHER_OID = "66666666-6666-4666-8666-666666666666"

local function world()
  local n = 0
  local sim = { faults = {}, clock = 1700000000, tokens = {
    admin = { tid = T1, oid = ADMIN_OID, appid = "admin-app", aud = "any" },
    exo = { tid = T1, oid = EXO_OID, appid = "00000002-0000-0ff1-ce00-000000000000" },
    other = { tid = T1, oid = OTHER_OID, appid = "other" },
    foreign = { tid = "77777777-7777-4777-8777-777777777777", oid = ADMIN_OID, appid = "x" },
  } }
  sim.rng = { guid = function() n = n + 1; return string.format("%08x-0000-4000-8000-%012x", n, n) end,
              int = function(_, a) return a end }
  sim.state = { tenants = { [T1] = { id = T1, name = "fabrikam", dir = { objects = {} },
    azure = { subscriptions = { [SUB] = { subscriptionId = SUB, displayName = "Fabrikam Azure",
      resource_groups = {} } } } } } }
  function sim:now() return self.clock end
  function sim:visible() return true end
  function sim:auth(req)
    local h = req.headers.authorization
    local c = h and self.tokens[h:match("^Bearer (.+)$") or ""]
    if not c then return nil, { status = 401 } end
    return c
  end
  return sim
end

local function call(svc, sim, method, url, body, token)
  local host, path = url:match("^https://([^/]+)(/.*)$")
  local h = { host = host }
  if token ~= false then h.authorization = "Bearer " .. (token or "admin") end
  local res = svc.handle(sim, { method = method, path = path, host = host, headers = h,
    body = type(body) == "table" and cjson.encode(body) or body })   -- a string goes as it is
  local b = res.body
  if type(b) == "string" and b:sub(1, 1) == "{" then b = cjson.decode(b) end
  return res.status, b, res.headers or {}
end

local ARM = "https://management.azure.com/subscriptions/" .. SUB
local V = "https://t2tvault1.vault.azure.net"

local function make_vault(sim, policies)
  local st = call(arm, sim, "PUT", ARM .. "/resourcegroups/rg1?api-version=2021-04-01", { location = "westeurope" })
  lu.assertTrue(st == 201 or st == 200)
  local status, body, h = call(arm, sim, "PUT", ARM .. "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/"
    .. "t2tvault1?api-version=2023-07-01", { location = "westeurope", properties = {
      tenantId = T1, sku = { family = "A", name = "standard" }, accessPolicies = policies or {
        { tenantId = T1, objectId = ADMIN_OID, permissions = { secrets = { "get", "list", "set" },
          certificates = { "get", "list", "create" } } } } } })
  return status, body, h
end

TestSimAzure = {}

function TestSimAzure.test_resource_group_201_then_200_and_404()
  local sim = world()
  lu.assertEquals((call(arm, sim, "GET", ARM .. "/resourcegroups/rg1?api-version=2021-04-01")), 404)
  local s1, b1 = call(arm, sim, "PUT", ARM .. "/resourcegroups/rg1?api-version=2021-04-01", { location = "westeurope" })
  lu.assertEquals(s1, 201)
  lu.assertEquals(b1.id, "/subscriptions/" .. SUB .. "/resourceGroups/rg1")
  lu.assertEquals(b1.properties.provisioningState, "Succeeded")
  lu.assertEquals((call(arm, sim, "PUT", ARM .. "/resourcegroups/rg1?api-version=2021-04-01", { location = "westeurope" })), 200)
  local s, b = call(arm, sim, "GET", ARM .. "/resourcegroups/RG1?api-version=2021-04-01")
  lu.assertEquals(s, 200)
  lu.assertEquals(b.location, "westeurope")
  local s2, e = call(arm, sim, "GET", ARM .. "/resourcegroups/rg1")
  lu.assertEquals(s2, 400)
  lu.assertEquals(e.error.code, "MissingApiVersionParameter")
  lu.assertEquals((call(arm, sim, "GET", ARM .. "/resourcegroups/rg1?api-version=1", nil, false)), 401)
  local s3, e3 = call(arm, sim, "GET", "https://management.azure.com/subscriptions/nope/resourcegroups/x?api-version=1")
  lu.assertEquals(s3, 404)
  lu.assertEquals(e3.error.code, "SubscriptionNotFound")
end

function TestSimAzure.test_provider_registration()
  local sim = world()
  local s, b = call(arm, sim, "POST", ARM .. "/providers/Microsoft.KeyVault/register?api-version=2021-04-01")
  lu.assertEquals(s, 200)
  lu.assertEquals(b.registrationState, "Registering")
  local _, b2 = call(arm, sim, "GET", ARM .. "/providers/Microsoft.KeyVault?api-version=2021-04-01")
  lu.assertEquals(b2.registrationState, "Registered")
  sim.state.tenants[T1].azure.subscriptions[SUB].providers = { ["Microsoft.KeyVault"] = "NotRegistered" }
  local st, e = make_vault(sim)
  lu.assertEquals(st, 409)
  lu.assertEquals(e.error.code, "MissingSubscriptionRegistration")
end

function TestSimAzure.test_vault_lro_and_access_policies()
  local sim = world()
  local status, body, h = make_vault(sim)
  lu.assertEquals(status, 201)
  lu.assertEquals(body.properties.vaultUri, "https://t2tvault1.vault.azure.net/")
  lu.assertEquals(body.properties.provisioningState, "RegisteringDns")
  lu.assertNotNil(h["azure-asyncoperation"])
  -- the data plane is not reachable until the DNS name is registered
  lu.assertEquals((call(kv, sim, "GET", V .. "/secrets/x?api-version=7.4")), 404)
  local op = h["azure-asyncoperation"]
  local _, p1 = call(arm, sim, "GET", op)
  lu.assertEquals(p1.status, "InProgress")
  local _, p2 = call(arm, sim, "GET", op)
  lu.assertEquals(p2.status, "Succeeded")
  local _, v = call(arm, sim, "GET", ARM .. "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/t2tvault1?api-version=2023-07-01")
  lu.assertEquals(v.properties.provisioningState, "Succeeded")
  -- second PUT: 200; name taken elsewhere: 409
  lu.assertEquals((make_vault(sim)), 200)
  -- access policy add merges (the EXO SP gets secrets/certificates get,list)
  local url = ARM .. "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/t2tvault1/accessPolicies/add?api-version=2023-07-01"
  local pol = { properties = { accessPolicies = { { tenantId = T1, objectId = EXO_OID,
    permissions = { secrets = { "get", "list" }, certificates = { "get", "list" } } } } } }
  local s, r = call(arm, sim, "PUT", url, pol)
  lu.assertEquals(s, 200)
  lu.assertEquals(#r.properties.accessPolicies, 2)
  lu.assertEquals((call(arm, sim, "PUT", url, pol)), 200)      -- re-applying is harmless
  local _, r2 = call(arm, sim, "GET", ARM .. "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/t2tvault1?api-version=2023-07-01")
  lu.assertEquals(#r2.properties.accessPolicies, 2)
  lu.assertEquals(r2.properties.accessPolicies[2].permissions.secrets, { "get", "list" })
  lu.assertEquals((call(arm, sim, "PUT", url, { properties = { accessPolicies = { { tenantId = T1,
    objectId = EXO_OID, permissions = { secrets = { "fly" } } } } } })), 400)
end

local function ready_vault(sim, policies)
  local _, _, h = make_vault(sim, policies)
  call(arm, sim, "GET", h["azure-asyncoperation"])
  call(arm, sim, "GET", h["azure-asyncoperation"])
end

-- Soft delete (wire.md §4): a deleted vault keeps its name reserved, here and for every other
-- subscription; createMode "recover" brings it back with its secrets; a purge frees the name.
function TestSimAzure.test_vault_soft_delete_recover_purge()
  local sim = world()
  ready_vault(sim)
  lu.assertEquals((call(kv, sim, "PUT", V .. "/secrets/keep?api-version=7.4", { value = "v" })), 200)
  local VPATH = ARM .. "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/t2tvault1?api-version=2023-07-01"
  lu.assertEquals((call(arm, sim, "DELETE", VPATH)), 200)
  lu.assertEquals((call(arm, sim, "GET", VPATH)), 404)
  local s, e = make_vault(sim)
  lu.assertEquals(s, 409)
  lu.assertEquals(e.error.code, "VaultAlreadyExists")
  lu.assertStrContains(e.error.message, "recently deleted but not purged")
  local _, list = call(arm, sim, "GET", ARM .. "/providers/Microsoft.KeyVault/deletedVaults?api-version=2023-07-01")
  lu.assertEquals(#list.value, 1)
  lu.assertEquals(list.value[1].name, "t2tvault1")
  lu.assertEquals(list.value[1].properties.scheduledPurgeDate, "2024-02-12T22:13:20Z")   -- 90 days on
  -- recover: the vault is back, secret and access policy included
  local rbody = { location = "westeurope", properties = { tenantId = T1, sku = { family = "A", name = "standard" },
                  createMode = "recover" } }
  lu.assertEquals((call(arm, sim, "PUT", VPATH, rbody)), 200)
  local _, sec = call(kv, sim, "GET", V .. "/secrets/keep?api-version=7.4")
  lu.assertEquals(sec.value, "v")
  s, e = call(arm, sim, "PUT", VPATH:gsub("t2tvault1", "t2tvault2"), rbody)
  lu.assertEquals(s, 404)
  lu.assertEquals(e.error.code, "SoftDeletedVaultDoesNotExist")
  -- deleting the resource group soft-deletes its vaults too; a purge frees the name
  lu.assertEquals((call(arm, sim, "DELETE", ARM .. "/resourcegroups/rg1?api-version=2021-04-01")), 200)
  lu.assertEquals((make_vault(sim)), 409)
  local PURGE = ARM .. "/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/t2tvault1"
  lu.assertEquals((call(arm, sim, "GET", PURGE .. "?api-version=2023-07-01")), 200)
  lu.assertEquals((call(arm, sim, "POST", PURGE .. "/purge?api-version=2023-07-01")), 202)
  lu.assertEquals((call(arm, sim, "GET", PURGE .. "?api-version=2023-07-01")), 404)
  lu.assertEquals((make_vault(sim)), 201)
end

-- A body that is not JSON: 400 with each service's own code, and nothing is created.
function TestSimAzure.test_body_not_json()
  local sim = world()
  local s, e = call(arm, sim, "PUT", ARM .. "/resourcegroups/rg9?api-version=2021-04-01", "{location:")
  lu.assertEquals(s, 400)
  lu.assertEquals(e.error.code, "InvalidRequestContent")
  lu.assertNil(sim.state.tenants[T1].azure.subscriptions[SUB].resource_groups.rg9)
  ready_vault(sim)
  s, e = call(kv, sim, "PUT", V .. "/secrets/s1?api-version=7.4", "{value:")
  lu.assertEquals(s, 400)
  lu.assertEquals(e.error.code, "BadParameter")
  lu.assertEquals((call(kv, sim, "GET", V .. "/secrets/s1?api-version=7.4")), 404)
end

function TestSimAzure.test_secrets_versions_and_access()
  local sim = world()
  ready_vault(sim)
  local s, b = call(kv, sim, "PUT", V .. "/secrets/app-secret?api-version=7.4", { value = "v1", contentType = "text/plain" })
  lu.assertEquals(s, 200)
  lu.assertStrMatches(b.id, "https://t2tvault1%.vault%.azure%.net/secrets/app%-secret/%x+")
  local v1 = b.id:match("/(%x+)$")
  lu.assertEquals(#v1, 32)
  call(kv, sim, "PUT", V .. "/secrets/app-secret?api-version=7.4", { value = "v2" })
  local _, latest = call(kv, sim, "GET", V .. "/secrets/app-secret?api-version=7.4")
  lu.assertEquals(latest.value, "v2")
  local _, old = call(kv, sim, "GET", V .. "/secrets/app-secret/" .. v1 .. "?api-version=7.4")
  lu.assertEquals(old.value, "v1")
  local s404, e404 = call(kv, sim, "GET", V .. "/secrets/none?api-version=7.4")
  lu.assertEquals(s404, 404)
  lu.assertEquals(e404.error.code, "SecretNotFound")
  -- no access policy for this principal → 403 AccessDenied
  local s403, e403 = call(kv, sim, "GET", V .. "/secrets/app-secret?api-version=7.4", nil, "other")
  lu.assertEquals(s403, 403)
  lu.assertEquals(e403.error.code, "Forbidden")
  lu.assertEquals(e403.error.innererror.code, "AccessDenied")
  -- unauthenticated → 401 with the tenant in WWW-Authenticate
  local s401, _, h401 = call(kv, sim, "GET", V .. "/secrets/app-secret?api-version=7.4", nil, false)
  lu.assertEquals(s401, 401)
  lu.assertStrContains(h401["www-authenticate"], "https://login.microsoftonline.com/" .. T1)
  lu.assertStrContains(h401["www-authenticate"], 'resource="https://vault.azure.net"')
  lu.assertEquals((call(kv, sim, "GET", V .. "/secrets/app-secret?api-version=7.4", nil, "foreign")), 401)
  lu.assertEquals((call(kv, sim, "GET", V .. "/secrets/app-secret")), 400)
end

function TestSimAzure.test_rbac_vault_and_role_assignment()
  local sim = world()
  local _, _, h = make_vault(sim, {})
  call(arm, sim, "GET", h["azure-asyncoperation"]); call(arm, sim, "GET", h["azure-asyncoperation"])
  local v = sim.state.tenants[T1].azure.subscriptions[SUB].resource_groups.rg1.vaults.t2tvault1
  v.properties.enableRbacAuthorization = true
  local s, e = call(kv, sim, "GET", V .. "/secrets/x?api-version=7.4")
  lu.assertEquals(s, 403)
  lu.assertEquals(e.error.innererror.code, "ForbiddenByRbac")
  local ra = v.id .. "/providers/Microsoft.Authorization/roleAssignments/88888888-8888-4888-8888-888888888888?api-version=2022-04-01"
  local body = { properties = { principalId = ADMIN_OID, principalType = "ServicePrincipal",
    roleDefinitionId = "/subscriptions/" .. SUB .. "/providers/Microsoft.Authorization/roleDefinitions/b86a8fe4-44ce-4948-aee5-eccb2c155cd7" } }
  lu.assertEquals((call(arm, sim, "PUT", "https://management.azure.com" .. ra, body)), 201)
  local ra2 = ra:gsub("88888888%-8888%-4888%-8888%-888888888888", "99999999-9999-4999-8999-999999999999")
  local s409, e409 = call(arm, sim, "PUT", "https://management.azure.com" .. ra2, body)
  lu.assertEquals(s409, 409)
  lu.assertEquals(e409.error.code, "RoleAssignmentExists")
  lu.assertEquals((call(kv, sim, "PUT", V .. "/secrets/x?api-version=7.4", { value = "s" })), 200)
end

function TestSimAzure.test_certificate_create_pending_completed_and_pfx()
  local sim = world()
  ready_vault(sim)
  local policy = { policy = { key_props = { exportable = true, kty = "RSA", key_size = 2048, reuse_key = false },
    secret_props = { contentType = "application/x-pkcs12" },
    x509_props = { subject = "CN=fabrikam_contoso_1234", validity_months = 12 }, issuer = { name = "Self" } } }
  local s, p, h = call(kv, sim, "POST", V .. "/certificates/mig/create?api-version=7.4", policy)
  lu.assertEquals(s, 202)
  lu.assertEquals(p.status, "inProgress")
  lu.assertEquals(p.id, V .. "/certificates/mig/pending")
  lu.assertStrContains(h.location, "/certificates/mig/pending")
  lu.assertEquals((call(kv, sim, "GET", V .. "/certificates/mig?api-version=7.4")), 404)
  local _, p1 = call(kv, sim, "GET", V .. "/certificates/mig/pending?api-version=7.4")
  lu.assertEquals(p1.status, "inProgress")
  local _, p2 = call(kv, sim, "GET", V .. "/certificates/mig/pending?api-version=7.4")
  lu.assertEquals(p2.status, "completed")
  local s2, c = call(kv, sim, "GET", V .. "/certificates/mig?api-version=7.4")
  lu.assertEquals(s2, 200)
  local ver = c.id:match("/mig/(%x+)$")
  lu.assertEquals(c.kid, V .. "/keys/mig/" .. ver)
  lu.assertEquals(c.sid, V .. "/secrets/mig/" .. ver)
  lu.assertStrMatches(c.x5t, "[%w_%-]+")
  local crypto = require "t2t.crypto"
  local cert = crypto.load_cert(crypto.base64_decode(c.cer))
  lu.assertEquals(crypto.base64url_encode(cert:fingerprint("sha1")), c.x5t)
  lu.assertStrContains(cert:subject(), "CN=fabrikam_contoso_1234")
  -- the private key: GET /secrets/{certName} is the base64 PFX
  local _, sec = call(kv, sim, "GET", V .. "/secrets/mig?api-version=7.4")
  lu.assertEquals(sec.contentType, "application/x-pkcs12")
  lu.assertEquals(sec.kid, c.kid)
  local p12 = assert(crypto.pkcs12_import(sec.value, ""))
  local got_cert = p12.cert
  lu.assertTrue(p12.key:is_private())
  lu.assertEquals(crypto.base64url_encode(got_cert:fingerprint("sha1")), c.x5t)
  -- the certificate's secret cannot be overwritten
  lu.assertEquals((call(kv, sim, "PUT", V .. "/secrets/mig?api-version=7.4", { value = "x" })), 409)
  -- the EXO SP without a policy cannot read it
  lu.assertEquals((call(kv, sim, "GET", V .. "/secrets/mig?api-version=7.4", nil, "exo")), 403)
end

function TestSimAzure.test_rbac_scope_is_whole_segments_and_defaults_to_the_subscription()
  lu.assertTrue(arm.in_scope("/subscriptions/S/resourceGroups/RG1/providers/x/vaults/v",
    "/subscriptions/s/resourcegroups/rg1"))
  lu.assertFalse(arm.in_scope("/subscriptions/S/resourceGroups/rg10", "/subscriptions/S/resourceGroups/rg1"))
  lu.assertTrue(arm.in_scope("/subscriptions/S", "/subscriptions/S/"))
  local seen = {}
  for a in arm.assignments({ role_assignments = { { principalId = "p",
      roleDefinitionId = "/x/roleDefinitions/b86a8fe4-44ce-4948-aee5-eccb2c155cd7" } } }, "S") do
    seen[#seen + 1] = a
  end
  lu.assertEquals(seen[1].scope, "/subscriptions/S")
  lu.assertEquals(seen[1].role, "b86a8fe4-44ce-4948-aee5-eccb2c155cd7")
end
