-- t2t.azure: Azure Resource Manager and Key Vault data-plane client (wire.md §4), what the
-- legacy cross-tenant setup needs (ms-setup-and-prep.md §1.8).
--
--   local az = azure.new{token = fn(refresh) (ARM), vault_token = fn(refresh) (Key Vault),
--                        http = http.client{...}, cloud = "global", subscription = "<guid>"}
--   az:arm(method, path, body, opts) -> body | true | nil, err     (LROs are waited for)
--   az:vault(name, method, path, body, opts) -> body | true | nil, err
--   az:resource_group(name) / az:ensure_resource_group(name, location, tags)
--   az:register_provider(ns) ; az:get_vault(rg, name) ; az:put_vault(rg, name, location, props)
--   az:find_vault(name) ; az:access_policy(rg, vault, policies, "add"|"replace"|"remove")
--   az:role_assignment(scope, principal_id, role_guid, principal_type) -> body, "created"|"exists"
--   az:get_secret(vault, name, version) ; az:set_secret(vault, name, value, opts)
--   az:create_certificate(vault, name, policy, opts) -> certificate (polls pending)
--   az:get_certificate(vault, name, version) ; az:get_pfx(vault, cert_name) -> base64 PFX, contentType
-- Errors: {code, message, status, service = "arm" | "keyvault", request_id, retryable, inner}
-- with __tostring; secret values never appear in them.
local cjson = require "cjson"
local graph = require "t2t.graph"

local M = {}

-- per cloud: the ARM root and the Key Vault DNS suffix (t2t.clouds)
M.CLOUDS = {}
do
  local clouds = require "t2t.clouds"
  local suffix = clouds.map("vault_suffix")
  for name, arm in pairs(clouds.map("arm")) do M.CLOUDS[name] = { arm = arm, vault = suffix[name] } end
end
M.API = { resources = "2021-04-01", keyvault = "2023-07-01", authorization = "2022-04-01", vault_data = "7.4" }
M.ROLES = {   -- wire.md §5.5
  ["Key Vault Administrator"] = "00482a5a-887f-4fb3-b363-3b7fe8e74483",
  ["Key Vault Secrets Officer"] = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
  ["Key Vault Secrets User"] = "4633458b-17de-408a-b874-0445c86b69e6",
  ["Key Vault Certificates Officer"] = "a4417e6f-fecd-4de8-b567-7b0420556985",
  ["Key Vault Reader"] = "21090545-7ca7-4776-b22c-e363652d74d2",
  ["Key Vault Crypto User"] = "12338af0-0e69-4776-bea7-57ae8d297424",
}

local Err = {}
Err.__index = Err
Err.__tostring = function(e)
  local s = string.format("%s: %s %s: %s%s", e.service, e.method or "?", e.path or "?",
    e.status and (tostring(e.status) .. " ") or "", tostring(e.code))
  if e.inner then s = s .. "/" .. e.inner end
  if e.message and e.message ~= "" then s = s .. ": " .. e.message end
  if e.request_id then s = s .. " (x-ms-request-id " .. e.request_id .. ")" end
  return s
end
M.Error = Err

local RETRYABLE = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }
local TERMINAL = { Succeeded = true, Failed = true, Canceled = true }

local function header(h, name)
  if not h then return nil end
  if h[name] ~= nil then return h[name] end
  for k, v in pairs(h) do if type(k) == "string" and k:lower() == name then return v end end
  return nil
end

local function parse_error(service, res, terr, method, path)
  local e = setmetatable({ service = service, method = method, path = path and path:gsub("%?.*$", "") }, Err)
  if not res then
    e.code = terr and terr.code or "transport"
    e.message = terr and (terr.message or tostring(terr)) or "request failed"
    e.retryable = terr and terr.retryable or false
    return e
  end
  e.status = res.status
  local ok, body = pcall(cjson.decode, res.body or "")
  local ae = ok and type(body) == "table" and type(body.error) == "table" and body.error
  -- some resource providers answer the CloudError body unwrapped: {"code": ..., "message": ...}
  if not ae and ok and type(body) == "table" and type(body.code) == "string" then ae = body end
  e.code = ae and ae.code or ("HTTP" .. tostring(res.status))
  e.message = ae and ae.message or ""
  local inner = ae and (ae.innererror or ae.innerError)
  e.inner = type(inner) == "table" and inner.code or nil
  e.request_id = header(res.headers, "x-ms-request-id")
  e.retry_after = tonumber(header(res.headers, "retry-after"))
  e.www_authenticate = header(res.headers, "www-authenticate")
  e.retryable = RETRYABLE[res.status] or false
  return e
end
M.parse_error = parse_error

local A = {}
A.__index = A


function M.new(o)
  assert(type(o) == "table", "azure.new: options table expected")
  assert(type(o.http) == "table" and o.http.request, "azure.new: http client expected")
  local c = M.CLOUDS[o.cloud or "global"]
  assert(c, "azure.new: unknown cloud " .. tostring(o.cloud))
  return setmetatable({
    token = o.token, vault_token = o.vault_token or o.token, http = o.http, arm_root = o.arm_root or c.arm,
    vault_suffix = o.vault_suffix or c.vault, subscription = o.subscription, tenant = o.tenant,
    sleep = o.sleep or require("t2t").sleep, now = o.now or require("t2t").now, lro_timeout = o.lro_timeout or 600,
  }, A)
end

local function decode(res)
  if res.body == nil or res.body == "" then return true end
  local ok, v = pcall(cjson.decode, res.body)
  if ok then return v end
  return res.body
end

-- One HTTP exchange with a bearer from tokfn, refreshed once on 401.
function A:_send(service, tokfn, method, url, body, opts)
  opts = opts or {}
  if not tokfn then
    return nil, setmetatable({ service = service, code = "NoToken", method = method, path = url,
      message = "no token function for " .. service }, Err)
  end
  local safe, why = require("t2t.http").token_target(url,
    service == "keyvault" and { suffix = self.vault_suffix } or self.arm_root)
  if not safe then
    return nil, setmetatable({ service = service, code = "UnsafeUrl", method = method,
      path = require("t2t.http").redact_url(url), message = string.format("refused to send the %s token to %s (%s)",
      service == "keyvault" and "Key Vault" or "Azure Resource Manager", require("t2t.http").redact_url(url), why) }, Err)
  end
  local headers = { Accept = "application/json" }
  local payload
  if body ~= nil then payload = graph.encode(body); headers["Content-Type"] = "application/json" end
  local refreshed = false
  while true do
    local tok, terr = tokfn(refreshed)
    if not tok then
      return nil, setmetatable({ service = service, code = "token", message = tostring(terr),
        method = method, path = url }, Err)
    end
    headers.Authorization = "Bearer " .. tok
    local res, err = self.http:request { method = method, url = url, headers = headers, body = payload,
                                         retry = opts.retry, timeout = opts.timeout }
    if not res then return nil, parse_error(service, nil, err, method, url) end
    if res.status == 401 and not refreshed then
      refreshed = true
    elseif res.status >= 400 then
      return nil, parse_error(service, res, nil, method, url)
    else
      return decode(res), nil, res
    end
  end
end

-- Wait for a long-running operation (wire.md §4.6): Azure-AsyncOperation (status), else
-- Location (202 while running), else a non-terminal provisioningState (re-GET the resource).
function A:_wait(method, url, body, res, opts)
  local deadline = self.now() + (opts.lro_timeout or self.lro_timeout)
  local async = header(res.headers, "azure-asyncoperation")
  local location = header(res.headers, "location")
  local function pause(r)
    local ra = tonumber(r and header(r.headers, "retry-after")) or opts.poll_interval or 2
    if self.now() + ra > deadline then return false end
    self.sleep(ra)
    return true
  end
  local last = res
  if async then
    while true do
      if not pause(last) then break end
      local st, err, r = self:_send("arm", self.token, "GET", async, nil, opts)
      if not st then return nil, err end
      last = r
      local status = type(st) == "table" and st.status
      if status == "Succeeded" then
        if method == "PUT" or method == "PATCH" then return self:_send("arm", self.token, "GET", url, nil, opts) end
        return body
      elseif status == "Failed" or status == "Canceled" then
        local e = type(st.error) == "table" and st.error or {}
        return nil, setmetatable({ service = "arm", method = method, path = url:gsub("%?.*$", ""),
          code = e.code or ("Operation" .. status), message = e.message or ("long-running operation " .. status:lower()) }, Err)
      end
    end
  elseif location and res.status == 202 then
    while true do
      if not pause(last) then break end
      local b, err, r = self:_send("arm", self.token, "GET", location, nil, opts)
      if not b then return nil, err end
      last = r
      if r.status ~= 202 then return b end
    end
  else
    while true do
      local state = type(body) == "table" and type(body.properties) == "table" and body.properties.provisioningState
      if not state or TERMINAL[state] then
        if state == "Failed" or state == "Canceled" then
          return nil, setmetatable({ service = "arm", method = method, path = url:gsub("%?.*$", ""),
            code = "Provisioning" .. state, message = "provisioningState " .. state }, Err)
        end
        return body
      end
      if not pause(last) then break end
      local b, err, r = self:_send("arm", self.token, "GET", url, nil, opts)
      if not b then return nil, err end
      body, last = b, r
    end
  end
  return nil, setmetatable({ service = "arm", method = method, path = url:gsub("%?.*$", ""),
    code = "OperationTimeout", message = "the long-running operation did not finish in time", retryable = true }, Err)
end

-- ARM call: path relative to the ARM root (or a full URL); api-version from opts or the path.
function A:arm(method, path, body, opts)
  opts = opts or {}
  method = method:upper()
  local url = path:match("^https?://") and path or (self.arm_root .. path)
  if not url:find("api-version=", 1, true) then
    url = url .. (url:find("?", 1, true) and "&" or "?") .. "api-version=" .. (opts.api_version or M.API.resources)
  end
  local out, err, res = self:_send("arm", self.token, method, url, body, opts)
  if not out then return nil, err end
  if opts.wait ~= false and (res.status == 201 or res.status == 202 or res.status == 200) and method ~= "GET" then
    local pending = header(res.headers, "azure-asyncoperation") or (res.status == 202 and header(res.headers, "location"))
    local state = type(out) == "table" and type(out.properties) == "table" and out.properties.provisioningState
    if pending or (state and not TERMINAL[state]) then return self:_wait(method, url, out, res, opts) end
  end
  return out                       -- the body only: the raw response is no caller's business
end

function A:vault_url(name, path)
  local base = "https://" .. name:lower() .. self.vault_suffix
  if path:sub(1, 1) ~= "/" then path = "/" .. path end
  local url = base .. path
  if not url:find("api-version=", 1, true) then
    url = url .. (url:find("?", 1, true) and "&" or "?") .. "api-version=" .. M.API.vault_data
  end
  return url
end

-- Key Vault data-plane call on vault `name`.
function A:vault(name, method, path, body, opts)
  local url = path:match("^https?://") and path or self:vault_url(name, path)
  if path:match("^https?://") and not url:find("api-version=", 1, true) then
    url = url .. (url:find("?", 1, true) and "&" or "?") .. "api-version=" .. M.API.vault_data
  end
  local out, err = self:_send("keyvault", self.vault_token, method:upper(), url, body, opts)
  return out, err
end

local function sub_of(self, opts)
  local s = opts and opts.subscription or self.subscription
  assert(s, "azure: no subscription (azure.new{subscription=...} or opts.subscription)")
  return s
end

local function enc(s) return (tostring(s):gsub("[^%w%-%._~()]", function(c) return string.format("%%%02X", c:byte()) end)) end

-- Resource groups -------------------------------------------------------------------------------

function A:resource_group(name, opts)
  return self:arm("GET", "/subscriptions/" .. sub_of(self, opts) .. "/resourcegroups/" .. enc(name), nil,
    { api_version = M.API.resources })
end

-- ensure_resource_group(name, location, tags) -> rg, "exists" | "created"
function A:ensure_resource_group(name, location, tags, opts)
  local rg, err = self:resource_group(name, opts)
  if rg then return rg, "exists" end
  if err.status ~= 404 then return nil, err end
  local body = { location = location, tags = tags }
  local out, e2 = self:arm("PUT", "/subscriptions/" .. sub_of(self, opts) .. "/resourcegroups/" .. enc(name), body,
    { api_version = M.API.resources })
  if not out then return nil, e2 end
  return out, "created"
end

-- register_provider(ns): POST register, then poll until Registered.
function A:register_provider(ns, opts)
  opts = opts or {}
  local base = "/subscriptions/" .. sub_of(self, opts) .. "/providers/" .. ns
  local cur, err = self:arm("GET", base, nil, { api_version = M.API.resources })
  if not cur then return nil, err end
  if cur.registrationState == "Registered" then return cur, "exists" end
  local r, e2 = self:arm("POST", base .. "/register", nil, { api_version = M.API.resources })
  if not r then return nil, e2 end
  local deadline = self.now() + (opts.timeout or 300)
  while r.registrationState ~= "Registered" do
    if self.now() >= deadline then
      return nil, setmetatable({ service = "arm", code = "RegistrationTimeout", path = base,
        message = ns .. " is still " .. tostring(r.registrationState) }, Err)
    end
    self.sleep(opts.poll_interval or 5)
    r, e2 = self:arm("GET", base, nil, { api_version = M.API.resources })
    if not r then return nil, e2 end
  end
  return r, "registered"
end

-- Vaults ----------------------------------------------------------------------------------------

local function vault_path(self, rg, name, opts)
  return "/subscriptions/" .. sub_of(self, opts) .. "/resourceGroups/" .. enc(rg)
    .. "/providers/Microsoft.KeyVault/vaults/" .. enc(name)
end

function A:get_vault(rg, name, opts)
  return self:arm("GET", vault_path(self, rg, name, opts), nil, { api_version = M.API.keyvault })
end

-- put_vault(rg, name, location, properties) — properties as wire.md §4.4 (tenantId, sku,
-- accessPolicies, enableRbacAuthorization ...); waits for provisioning to finish.
function A:put_vault(rg, name, location, props, opts)
  opts = opts or {}
  local p = {}
  for k, v in pairs(props or {}) do p[k] = v end
  p.tenantId = p.tenantId or self.tenant
  p.sku = p.sku or { family = "A", name = "standard" }
  p.accessPolicies = graph.array(p.accessPolicies or {})
  return self:arm("PUT", vault_path(self, rg, name, opts), { location = location, tags = opts.tags, properties = p },
    { api_version = M.API.keyvault, lro_timeout = opts.lro_timeout, poll_interval = opts.poll_interval })
end

-- find_vault(name) -> vault resource (any resource group of the subscription) | nil, err
function A:find_vault(name, opts)
  local list, err = self:arm("GET", "/subscriptions/" .. sub_of(self, opts) .. "/providers/Microsoft.KeyVault/vaults",
    nil, { api_version = M.API.keyvault })
  if not list then return nil, err end
  for _, v in ipairs(type(list) == "table" and list.value or {}) do
    if v.name:lower() == name:lower() then return v end
  end
  return nil, setmetatable({ service = "arm", status = 404, code = "ResourceNotFound",
    message = "no vault named '" .. name .. "' in the subscription", path = name }, Err)
end

-- access_policy(rg, vault, policies, kind): PUT …/accessPolicies/{add|replace|remove}.
function A:access_policy(rg, name, policies, kind, opts)
  kind = kind or "add"
  assert(kind == "add" or kind == "replace" or kind == "remove", "azure:access_policy: add, replace or remove")
  return self:arm("PUT", vault_path(self, rg, name, opts) .. "/accessPolicies/" .. kind,
    { properties = { accessPolicies = policies } }, { api_version = M.API.keyvault })
end


-- role_assignment(scope, principal_id, role, principal_type) -> body, "created" | "exists".
-- role: a role GUID, a name from M.ROLES, or a full roleDefinitionId.
function A:role_assignment(scope, principal_id, role, principal_type, opts)
  opts = opts or {}
  local sub = sub_of(self, opts)
  local def = M.ROLES[role] or role
  if not def:find("/", 1, true) then
    def = "/subscriptions/" .. sub .. "/providers/Microsoft.Authorization/roleDefinitions/" .. def
  end
  local body = { properties = { roleDefinitionId = def, principalId = principal_id,
                                principalType = principal_type or "ServicePrincipal" } }
  local out, err = self:arm("PUT", scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. (opts.name or require("t2t.crypto").uuid4()),
    body, { api_version = M.API.authorization })
  if out then return out, "created" end
  if err.status == 409 and err.code == "RoleAssignmentExists" then return true, "exists" end
  return nil, err
end

-- Key Vault data plane ------------------------------------------------------------------------------

function A:get_secret(vault, name, version, opts)
  return self:vault(vault, "GET", "/secrets/" .. enc(name) .. (version and ("/" .. version) or ""), nil, opts)
end

function A:set_secret(vault, name, value, o)
  o = o or {}
  return self:vault(vault, "PUT", "/secrets/" .. enc(name),
    { value = value, contentType = o.contentType, tags = o.tags, attributes = o.attributes }, o)
end

function A:get_certificate(vault, name, version, opts)
  return self:vault(vault, "GET", "/certificates/" .. enc(name) .. (version and ("/" .. version) or ""), nil, opts)
end

-- create_certificate(vault, name, policy, opts) -> certificate: POST create (202), poll the
-- pending operation (Retry-After, else opts.poll_interval, up to opts.attempts), then GET it.
function A:create_certificate(vault, name, policy, opts)
  opts = opts or {}
  local pending, err, res = self:vault(vault, "POST", "/certificates/" .. enc(name) .. "/create", { policy = policy }, opts)
  if not pending then return nil, err end
  local attempts = opts.attempts or 30
  for _ = 1, attempts do
    if pending.status == "completed" then return self:get_certificate(vault, name, nil, opts) end
    if pending.status ~= "inProgress" then
      local e = type(pending.error) == "table" and pending.error or {}
      return nil, setmetatable({ service = "keyvault", method = "POST", path = name,
        code = e.code or "CertificateFailed", message = e.message or ("certificate " .. tostring(pending.status)) }, Err)
    end
    self.sleep(tonumber(res and header(res.headers, "retry-after")) or opts.poll_interval or 5)
    pending, err, res = self:vault(vault, "GET", "/certificates/" .. enc(name) .. "/pending", nil, opts)
    if not pending then return nil, err end
  end
  return nil, setmetatable({ service = "keyvault", method = "GET", path = name, code = "CertificatePending",
    message = "the certificate is still pending after " .. attempts .. " polls", retryable = true }, Err)
end

-- get_pfx(vault, cert_name) -> base64 PKCS#12 (or PEM), contentType: the certificate's secret.
function A:get_pfx(vault, name, opts)
  local s, err = self:get_secret(vault, name, nil, opts)
  if not s then return nil, err end
  return s.value, s.contentType
end

return M
