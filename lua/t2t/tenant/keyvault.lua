-- t2t.tenant.keyvault: the legacy procedure's Azure part (ms-setup-and-prep.md §1.3 A.6, wire.md
-- §4.9): resource group, key vault, an access policy for the Exchange first-party service principal
-- (secrets and certificates get,list), a self-signed certificate, and its public part for the app.
-- Every change goes through the tenant's plan.  Azure calls go through t.azure (t2t.azure).
local tenant = require "t2t.tenant"

local M = {}

local ARM_RG, ARM_KV = "2021-04-01", "2023-07-01"

local function failure(...) return tenant.failure(...) end

-- Adapters over t.azure: ARM path calls and Key Vault data-plane calls.
local function arm(t, method, path, body)
  local az = t.azure
  if not az then error(failure("NoAzure", "no Azure connection for %s: the profile needs a subscription and " ..
                               "ARM/Key Vault access", t.name), 0) end
  return az:arm(method, path, body)
end
local function vault(t, name, method, path, body)
  return t.azure:vault(name, method, path, body)
end
local function missing(err) return type(err) == "table" and err.status == 404 end

local function has_perms(policy, kind, wanted)
  local have = {}
  for _, p in ipairs(policy.permissions and policy.permissions[kind] or {}) do have[p:lower()] = true end
  for _, w in ipairs(wanted) do if not have[w] then return false end end
  return true
end

local function find_policy(v, object_id)
  for _, p in ipairs(v.properties and v.properties.accessPolicies or {}) do
    if (p.objectId or ""):lower() == object_id:lower() then return p end
  end
end

local ARM_SUB = "2022-12-01"

-- The subscription, once the parameters are known to be usable | nil, err.
local function params(t, o)
  local sub = o.subscription or (t.profile and t.profile.subscription)
  if not sub or not o.resource_group or not o.vault then
    return nil, failure("KeyVaultParams", "--keyvault needs --subscription, --resource-group and --vault " ..
      "(SubscriptionId, ResourceGroup, KeyVaultName of the original script)")
  end
  if not o.vault:match("^[%w%-]+$") or #o.vault < 3 or #o.vault > 24 then
    return nil, failure("KeyVaultName", "vault name '%s' must be 3-24 letters, digits or '-'", o.vault)
  end
  return sub
end

-- precheck(t, {subscription, resource_group, vault, location}) -> true | nil, err: what the
-- legacy script verifies before it changes anything (ms-setup-and-prep.md §1.3 P2.3, A.4): the
-- parameters, that the subscription exists for this tenant's credentials, and that the location
-- is one of its Azure regions (by name, "westeurope", or display name, "West Europe").  So a
-- typo fails here, not with ARM's raw 404 after the app, service principal and consent exist.
function M.precheck(t, o)
  local sub, perr = params(t, o)
  if not sub then return nil, perr end
  local okc, s, err = pcall(arm, t, "GET", "/subscriptions/" .. sub .. "?api-version=" .. ARM_SUB)
  if not okc then return nil, s end           -- no Azure connection in the profile
  if not s then
    if missing(err) or (type(err) == "table" and err.status == 403) then
      return nil, failure("SubscriptionNotFound", "subscription %s was not found for tenant %s (or its admin " ..
        "app has no role on it): check --subscription (Azure portal > Subscriptions) and that the app is a " ..
        "Contributor or Owner there", sub, t.name)
    end
    return nil, err
  end
  local locs, lerr = arm(t, "GET", "/subscriptions/" .. sub .. "/locations?api-version=" .. ARM_SUB)
  if not locs then return nil, lerr end
  local want = tostring(o.location or ""):lower():gsub("%s+", "")
  local names = {}
  for _, l in ipairs(locs.value or {}) do
    if (l.name or ""):lower() == want or (l.displayName or ""):lower():gsub("%s+", "") == want then return true end
    names[#names + 1] = l.name
  end
  table.sort(names)
  return nil, failure("BadLocation", "'%s' is not an Azure location of subscription %s: --location takes a " ..
    "region name such as %s (az account list-locations)", tostring(o.location), sub,
    table.concat({ names[1], names[2], names[3] }, ", "))
end

-- ensure(t, {subscription, resource_group, vault, location, certificate, subject}) ->
-- {id = certificate URL, cer, thumbprint_b64, subject, starts, ends} | nil, err
function M.ensure(t, o)
  local sub, bad = params(t, o)
  if not sub then return nil, bad end
  if not o.subject:match("^CN=") then
    return nil, failure("CertSubject", "--certificate-subject must start with CN= ('%s')", o.subject)
  end
  local rg_path = "/subscriptions/" .. sub .. "/resourcegroups/" .. o.resource_group
  local rg, err = arm(t, "GET", rg_path .. "?api-version=" .. ARM_RG)
  if not rg and not missing(err) then return nil, err end
  if rg then t:note("= resource group '%s' exists", o.resource_group)
  else
    local body = { location = o.location }
    local _, cerr = t:create({ target = "resource group '" .. o.resource_group .. "'", tenant = t.name,
      operation = "keyvault", after = body,
      apply = function() return arm(t, "PUT", rg_path .. "?api-version=" .. ARM_RG, body) end },
      function() return (arm(t, "GET", rg_path .. "?api-version=" .. ARM_RG)) end)
    if cerr and cerr ~= "planned" then return nil, cerr end
  end
  -- Exchange's first-party SP reads the certificate; we need to create it.
  local exo_sp = t:find_sp(tenant.EXO_APP_ID)
  if not exo_sp then return nil, failure("NoExchange", "tenant %s has no Office 365 Exchange Online service principal", t.name) end
  local me = t.profile and t.profile.client_id and t:find_sp(t.profile.client_id)
  local v_path = rg_path:gsub("resourcegroups", "resourceGroups") .. "/providers/Microsoft.KeyVault/vaults/" .. o.vault
  local v
  v, err = arm(t, "GET", v_path .. "?api-version=" .. ARM_KV)
  if not v and not missing(err) then return nil, err end
  if v then t:note("= key vault '%s' exists", o.vault)
  else
    -- a deleted vault keeps its name for its retention period (soft delete, wire.md §4)
    local d = arm(t, "GET", "/subscriptions/" .. sub .. "/providers/Microsoft.KeyVault/locations/" ..
                  o.location:lower():gsub("%s", "") .. "/deletedVaults/" .. o.vault .. "?api-version=" .. ARM_KV)
    if d then
      local dp = d.properties or {}
      return nil, failure("KeyVaultSoftDeleted", "key vault '%s' was deleted (%s) and Azure keeps its name until %s " ..
        "(soft delete). Recover it (az keyvault recover --name %s) and re-run, purge it (az keyvault purge " ..
        "--name %s), or pass another --vault", o.vault, tostring(dp.deletionDate or "recently"),
        tostring(dp.scheduledPurgeDate or "its retention ends"), o.vault, o.vault)
    end
    local policies = {}
    if me then
      policies[1] = { tenantId = t.id, objectId = me.id, permissions = {
        secrets = { "get", "list", "set" }, certificates = { "get", "list", "create", "update" } } }
    end
    local body = { location = o.location, properties = { tenantId = t.id, sku = { family = "A", name = "standard" },
      enableRbacAuthorization = false, enableSoftDelete = true, accessPolicies = policies } }
    v, err = t:create({ target = "key vault '" .. o.vault .. "'", tenant = t.name, operation = "keyvault",
      after = { location = o.location, sku = "standard" },
      apply = function() return arm(t, "PUT", v_path .. "?api-version=" .. ARM_KV, body) end },
      function() return (arm(t, "GET", v_path .. "?api-version=" .. ARM_KV)) end)
    if err == "planned" then
      t.plan:change { kind = "add", target = "access policy for Office 365 Exchange Online on '" .. o.vault .. "'",
        tenant = t.name, operation = "keyvault", after = { secrets = "get,list", certificates = "get,list" },
        apply = function() end }
      t.plan:change { kind = "create", target = "certificate '" .. o.certificate .. "' (" .. o.subject .. ")",
        tenant = t.name, operation = "keyvault", after = { issuer = "Self", validity_months = 12 }, apply = function() end }
      return { planned = true, id = "https://" .. o.vault .. ".vault.azure.net/certificates/" .. o.certificate .. "/(new)",
               subject = o.subject, ends = t.now() + 363 * 86400 }
    end
    if not v then
      if type(err) == "table" and err.code == "VaultAlreadyExists" then
        return nil, failure("KeyVaultNameTaken", "the key vault name '%s' is taken: vault names are global " ..
          "across Azure, and another subscription or tenant has it (or a deleted vault elsewhere keeps it). " ..
          "Pass another --vault", o.vault)
      end
      return nil, err
    end
  end
  local p = find_policy(v, exo_sp.id)
  if p and has_perms(p, "secrets", { "get", "list" }) and has_perms(p, "certificates", { "get", "list" }) then
    t:note("= Exchange can read the key vault (access policy get,list)")
  else
    local body = { properties = { accessPolicies = { { tenantId = t.id, objectId = exo_sp.id,
      permissions = { secrets = { "get", "list" }, certificates = { "get", "list" } } } } } }
    local _, perr = t.plan:change { kind = "add", target = "access policy for Office 365 Exchange Online on '" ..
      o.vault .. "'", tenant = t.name, operation = "keyvault", after = { secrets = "get,list", certificates = "get,list" },
      apply = function() return arm(t, "PUT", v_path .. "/accessPolicies/add?api-version=" .. ARM_KV, body) end }
    if perr and perr ~= "planned" then return nil, perr end
  end
  return M.ensure_certificate(t, o)
end

local function b64url_to_b64(s)
  s = s:gsub("-", "+"):gsub("_", "/")
  return s .. string.rep("=", (4 - #s % 4) % 4)
end

local function cert_info(c, o, now)
  local ends = c.attributes and c.attributes.exp or (now + 365 * 86400)
  return { id = c.id, cer = c.cer, thumbprint_b64 = c.x5t and b64url_to_b64(c.x5t), subject = o.subject,
           starts = now, ends = math.min(ends - 2 * 86400, now + 363 * 86400) }
end

-- The self-signed certificate: reused while valid (so the app and the endpoint stay in step),
-- else created and polled until issued.
function M.ensure_certificate(t, o)
  local path = "/certificates/" .. o.certificate .. "?api-version=7.4"
  local c, err = vault(t, o.vault, "GET", path)
  if c and c.cer and (not c.attributes or not c.attributes.exp or c.attributes.exp > t.now() + 86400) then
    t:note("= certificate '%s' exists in '%s'", o.certificate, o.vault)
    return cert_info(c, o, t.now())
  end
  if not c and not missing(err) then return nil, err end
  local policy = { key_props = { exportable = true, kty = "RSA", key_size = 2048, reuse_key = false },
    secret_props = { contentType = "application/x-pkcs12" },
    x509_props = { subject = o.subject, validity_months = 12 }, issuer = { name = "Self" } }
  -- after a create whose answer was lost: finish the pending operation, then read the certificate
  local function finished()
    local pend = vault(t, o.vault, "GET", "/certificates/" .. o.certificate .. "/pending?api-version=7.4")
    if pend and pend.status == "inProgress" then return nil end
    local x = vault(t, o.vault, "GET", path)
    return x and x.cer and x or nil
  end
  local made, cerr = t.plan:change { kind = "create", target = "certificate '" .. o.certificate .. "' (" .. o.subject .. ")",
    tenant = t.name, operation = "keyvault", after = { issuer = "Self", subject = o.subject, validity_months = 12 },
    apply = function()
      local r, e = t.azure:create_certificate(o.vault, o.certificate, policy, { poll_interval = t.poll })
      if r then return r end
      local again = t:eventually(finished, 60)
      if again then return again end
      return nil, e
    end }
  if cerr == "planned" then return { planned = true, id = "(new certificate URL)", subject = o.subject, ends = t.now() + 363 * 86400 } end
  if not made then return nil, cerr end
  c = made.cer and made or t:eventually(finished, 60)
  if not c then return nil, failure("CertTimeout", "certificate '%s' was not issued in time; run again", o.certificate) end
  return cert_info(c, o, t.now())
end

-- The certificate's PFX (base64 PKCS#12) from the vault's secret of the same name (never logged).
function M.pfx(t, vault_name, name)
  local s, err = vault(t, vault_name, "GET", "/secrets/" .. name .. "?api-version=7.4")
  if not s then return nil, err end
  require("t2t.log").secret(s.value)
  return s.value
end

-- The deprecated VerifySetup's Key Vault checks: the vault exists and Exchange has get,list.
function M.verify(t, c, o)
  local name = o.kv_url:match("^https://([%w%-]+)%.vault%.")
  if not name then
    c.fail("Key Vault URL " .. o.kv_url .. " is not a certificate URL of a vault", "pass the endpoint's AppSecretKeyVaultUrl")
    return
  end
  if not t.azure then c.warn("Key Vault '" .. name .. "' not checked", "no Azure connection in this profile") return end
  local exo_sp = t:find_sp(tenant.EXO_APP_ID)
  local cert = vault(t, name, "GET", "/certificates/" .. (o.kv_url:match("/certificates/([^/]+)") or "") .. "?api-version=7.4")
  c.check(cert ~= nil, "KeyVault [" .. name .. "] holds the certificate",
    "KeyVault [" .. name .. "] does not hold the certificate " .. o.kv_url, "re-run setup-target --keyvault")
  local v = t.azure.find_vault and t.azure:find_vault(name)
  if v and exo_sp then
    local p = find_policy(v, exo_sp.id)
    if not p then
      c.fail("Exchange does not have any permissions on the KeyVault [" .. name .. "]", "re-run setup-target --keyvault")
    else
      for _, kind in ipairs { "certificates", "secrets" } do
        c.check(has_perms(p, kind, { "get", "list" }), "Exchange has [get,list] permission on " .. name .. "'s " .. kind,
          "Exchange does not have [get,list] permission on " .. name .. "'s " .. kind .. " container",
          "re-run setup-target --keyvault")
      end
    end
  end
end

return M
