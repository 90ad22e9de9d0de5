-- t2t.azure against the simulated ARM and Key Vault through a fake http object that calls the
-- services in-process: the legacy setup's sequence (resource group, vault with its LRO, access
-- policy, certificate create → poll → get, PFX as a secret), RBAC assignment, errors.
local lu = require "luaunit"
local cjson = require "cjson"
local azure = require "t2t.azure"
local arm = require "t2t.sim.arm"
local kv = require "t2t.sim.keyvault"
local sim_http = require "tests.lua.handlers.sim_http"

local T1 = "11111111-1111-4111-8111-111111111111"
local SUB = "33333333-3333-4333-8333-333333333333"
local ADMIN = "44444444-4444-4444-8444-444444444444"
local EXO_SP = "55555555-5555-4555-8555-555555555555"

local function world()
  local n = 0
  local sim = { faults = {}, clock = 1700000000 }
  sim.rng = { guid = function() n = n + 1; return string.format("%08x-0000-4000-8000-%012x", n, n) end,
              int = function(_, a) return a end }
  sim.state = { tenants = { [T1] = { id = T1, name = "fabrikam", dir = { objects = {} },
    azure = { subscriptions = { [SUB] = { subscriptionId = SUB, resource_groups = {} } } } } } }
  function sim:now() return self.clock end
  function sim:visible() return true end
  function sim:auth(req)
    local t = (req.headers.authorization or ""):match("^Bearer (.+)$")
    if t == "arm" or t == "kv" then return { tid = T1, oid = ADMIN, appid = "admin" } end
    if t == "exo" then return { tid = T1, oid = EXO_SP, appid = "exo" } end
    return nil, { status = 401 }
  end
  return sim
end

local function fake_http(sim)
  return sim_http(sim, function(host) return host == "management.azure.com" and arm or kv end)
end

local function client(sim, vault_token)
  local slept = {}
  local az = azure.new { http = fake_http(sim), subscription = SUB, tenant = T1,
    token = function() return "arm" end, vault_token = function() return vault_token or "kv" end,
    sleep = function(s) slept[#slept + 1] = s; sim.clock = sim.clock + s end,
    now = function() return sim.clock end }
  return az, slept
end

TestAzureClient = {}

function TestAzureClient.test_legacy_keyvault_sequence()
  local sim = world()
  local az, slept = client(sim)
  local rg, how = az:ensure_resource_group("t2t-rg", "westeurope")
  lu.assertEquals(how, "created")
  lu.assertEquals(rg.name, "t2t-rg")
  lu.assertEquals(select(2, az:ensure_resource_group("t2t-rg", "westeurope")), "exists")
  local reg = assert(az:register_provider("Microsoft.KeyVault"))
  lu.assertEquals(reg.registrationState, "Registered")
  local v = assert(az:put_vault("t2t-rg", "t2tkv01", "westeurope", { tenantId = T1, accessPolicies = {
    { tenantId = T1, objectId = ADMIN, permissions = { secrets = { "get", "list", "set" },
      certificates = { "get", "list", "create" } } } } }))
  lu.assertEquals(v.properties.provisioningState, "Succeeded")   -- the LRO was waited for
  lu.assertEquals(v.properties.vaultUri, "https://t2tkv01.vault.azure.net/")
  lu.assertTrue(#slept >= 1)
  -- the Exchange first-party SP gets secrets/certificates get,list (ms-setup-and-prep.md §1.3 A.6.d)
  assert(az:access_policy("t2t-rg", "t2tkv01", { { tenantId = T1, objectId = EXO_SP,
    permissions = { secrets = { "get", "list" }, certificates = { "get", "list" } } } }, "add"))
  local found = assert(az:find_vault("T2TKV01"))
  lu.assertEquals(#found.properties.accessPolicies, 2)
  -- certificate create → pending → completed
  local cert = assert(az:create_certificate("t2tkv01", "fabrikam-contoso-1", {
    key_props = { exportable = true, kty = "RSA", key_size = 2048, reuse_key = false },
    secret_props = { contentType = "application/x-pkcs12" },
    x509_props = { subject = "CN=fabrikam_contoso_1", validity_months = 12 }, issuer = { name = "Self" } }))
  lu.assertStrMatches(cert.id, "https://t2tkv01%.vault%.azure%.net/certificates/fabrikam%-contoso%-1/%x+")
  lu.assertNotNil(cert.cer)
  lu.assertNotNil(cert.x5t)
  local pfx, ct = az:get_pfx("t2tkv01", "fabrikam-contoso-1")
  lu.assertEquals(ct, "application/x-pkcs12")
  local crypto = require "t2t.crypto"
  local p12 = assert(crypto.pkcs12_import(pfx, ""))
  lu.assertEquals(crypto.base64url_encode(p12.cert:fingerprint("sha1")), cert.x5t)
  -- secrets
  local s = assert(az:set_secret("t2tkv01", "note", "hello", { contentType = "text/plain" }))
  lu.assertEquals(s.value, "hello")
  lu.assertEquals(assert(az:get_secret("t2tkv01", "note")).value, "hello")
end

function TestAzureClient.test_errors()
  local sim = world()
  local az = client(sim)
  local rg, err = az:resource_group("missing")
  lu.assertNil(rg)
  lu.assertEquals(err.status, 404)
  lu.assertEquals(err.code, "ResourceGroupNotFound")
  lu.assertEquals(err.service, "arm")
  lu.assertStrContains(tostring(err), "ResourceGroupNotFound")
  az:ensure_resource_group("rg", "westeurope")
  assert(az:put_vault("rg", "kv-one", "westeurope", { tenantId = T1 }))
  local other = client(sim, "exo")
  local _, e2 = other:get_secret("kv-one", "x")
  lu.assertEquals(e2.status, 403)
  lu.assertEquals(e2.service, "keyvault")
  lu.assertEquals(e2.inner, "AccessDenied")
  local _, e3 = az:get_secret("kv-one", "x")
  lu.assertEquals(e3.status, 403)          -- no policy for the admin either (none was given)
  local none = client(sim, "nope")
  local _, e4 = none:get_secret("kv-one", "x")
  lu.assertEquals(e4.status, 401)
  lu.assertStrContains(e4.www_authenticate, T1)
end

-- Both CloudError shapes: wrapped in "error", and the unwrapped one some providers answer.
function TestAzureClient.test_error_bodies()
  local azure = require "t2t.azure"
  local function res(status, body) return { status = status, headers = {}, body = require("cjson").encode(body) } end
  local e = azure.parse_error("arm", res(409, { error = { code = "Conflict", message = "busy" } }), nil, "PUT", "/x?a=1")
  lu.assertEquals({ e.code, e.message, e.path }, { "Conflict", "busy", "/x" })
  e = azure.parse_error("arm", res(400, { code = "InvalidRecordSet", message = "TXT value too long" }), nil, "PUT", "/x")
  lu.assertEquals({ e.code, e.message }, { "InvalidRecordSet", "TXT value too long" })
  e = azure.parse_error("arm", res(502, { whatever = 1 }), nil, "GET", "/x")
  lu.assertEquals({ e.code, e.message }, { "HTTP502", "" })
end

function TestAzureClient.test_role_assignment_is_idempotent()
  local sim = world()
  local az = client(sim)
  az:ensure_resource_group("rg", "westeurope")
  local v = assert(az:put_vault("rg", "kv-rbac", "westeurope", { tenantId = T1, enableRbacAuthorization = true }))
  local _, how = az:role_assignment(v.id, EXO_SP, "Key Vault Secrets User")
  lu.assertEquals(how, "created")
  local _, how2 = az:role_assignment(v.id, EXO_SP, "Key Vault Secrets User")
  lu.assertEquals(how2, "exists")
end
