-- t2t.tenant: ensure-style primitives for cross-tenant migration setup (ms-setup-and-prep.md
-- §1-4 and §10).  Each one reads first, computes what differs, and changes only that, through
-- the tenant's plan (t2t.plan: --plan shows it, the audit file records it).  A create whose
-- response was lost is found again by re-reading (for `settle` seconds, to ride out replication
-- lag) before anything is created a second time.
--
--   local tenant = require "t2t.tenant"
--   local t = tenant.new{ name = "fabrikam", id = tid, domain = "fabrikam.onmicrosoft.com",
--                         cloud = "global", graph = g, exo = ex, azure = az, plan = ctx.plan,
--                         say = function(line) ctx:say("%s", line) end, log = ctx.log }
--   local app = assert(t:ensure_app{ name = tenant.app_name("fabrikam", "contoso") })
--
-- Clients: graph (get/post/patch/delete(path, body) -> body | nil, err with err.status),
-- exo (invoke(cmdlet, params, opts) -> list | nil, err with err.code = exception short name),
-- azure (see t2t.tenant.keyvault).  Objects still to be created in --plan mode are returned as
-- placeholders with `planned = true`; later steps plan their own changes without reading them.
local log = require "t2t.log"

local M = {}
M.__index = M

M.EXO_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
M.GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
M.KEYVAULT_APP_ID = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"
M.ROLE = {
  ["Mailbox.Migration"] = "f7264778-fba9-422d-8e9e-2675a2c4b513",      -- on Exchange Online
  ["User.Invite.All"] = "09850681-111b-4a89-9bed-3f2cae46d706",        -- on Graph
  ["Exchange.ManageAsApp"] = "dc50a0fb-09a3-484d-be87-e023b12c6440",   -- on Exchange Online
}
M.REDIRECT = "https://office.com"
M.EXCHANGE_ADMIN_ROLE = "29232cdf-9323-42fd-ade2-1d097af3e4de"
M.GLOBAL_ADMIN_ROLE = "62e90394-69f5-4237-9190-012177145e10"

-- Per cloud: the login host (consent URLs), the endpoint's RemoteServer, the vault suffix.
M.CLOUDS = require("t2t.clouds").ALL


-- tenant.new{name, id, domain, cloud, graph, exo, azure, plan, say, log, settle, poll, sleep, now}
function M.new(o)
  assert(type(o) == "table", "tenant.new: options table expected")
  assert(o.plan, "tenant.new: a plan is required (every change goes through it)")
  local self = setmetatable({
    name = o.name or (o.domain and o.domain:match("^([^.]+)")) or o.id,
    id = o.id, domain = o.domain, cloud = o.cloud or "global",
    graph = o.graph, exo = o.exo, azure = o.azure, plan = o.plan,
    say = o.say or function(line) io.write(log.redact(line), "\n") end,
    log = o.log or log,
    settle = o.settle or 20, poll = o.poll or 1,
    sleep = o.sleep or require("t2t").sleep, now = o.now or os.time,
    warnings = {},
  }, M)
  if not M.CLOUDS[self.cloud] then error("tenant.new: unknown cloud '" .. tostring(self.cloud) .. "'", 2) end
  return self
end

-- An error value a person can act on: message plus an optional cause and code.
local ErrMT = { __tostring = function(e) return e.message end }
local function failure(code, fmt, ...)
  return setmetatable({ code = code, message = string.format(fmt, ...) }, ErrMT)
end
M.failure = failure

function M:warn(fmt, ...)
  local s = string.format(fmt, ...)
  self.warnings[#self.warnings + 1] = s
  self.say("warning: " .. s)
end

function M:note(fmt, ...) self.say(string.format(fmt, ...)) end

local function lower(s) return type(s) == "string" and s:lower() or s end

local function contains_ci(list, value)
  if type(list) == "string" then list = { list } end
  for _, v in ipairs(list or {}) do
    if lower(v) == lower(value) then return true end
  end
  return false
end
M.contains_ci = contains_ci

local function copy(t)
  if type(t) ~= "table" then return t end
  local out = {}
  for k, v in pairs(t) do out[k] = copy(v) end
  return out
end
M.copy = copy

local function odata_quote(s) return (tostring(s):gsub("'", "''")) end

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end
M.urlencode = urlencode

---------------------------------------------------------------------------------------------
-- Service adapters: the only places that call the clients.

local function need(self, what)
  if not self[what] then
    error(failure("NoClient", "%s: no %s connection for tenant %s", what, what, tostring(self.name)), 0)
  end
  return self[what]
end

-- Spaces and quotes in the query part of a path, percent-encoded ($filter=appId eq '...').
local function enc(path)
  local p, q = path:match("^([^?]*)%?(.*)$")
  if not p then return path end
  return p .. "?" .. q:gsub(" ", "%%20"):gsub("'", "%%27")
end

-- GET a Graph path: object, or nil when it does not exist (404), or nil, err.
function M:gget(path)
  path = enc(path)
  local g = need(self, "graph")
  local body, err = g:get(path)
  if body ~= nil then return body end
  if type(err) == "table" and (err.status == 404 or err.code == "Request_ResourceNotFound") then
    return nil
  end
  return nil, err or failure("GraphError", "GET %s failed", path)
end

-- Every object of a Graph collection (follows @odata.nextLink); nil, err on failure.
function M:glist(path)
  path = enc(path)
  local g = need(self, "graph")
  if g.items then
    local out = {}
    local ok, err = pcall(function()
      for obj in g:items(path) do out[#out + 1] = obj end
    end)
    if not ok then return nil, err end
    return out
  end
  local out = {}
  local url = path
  while url do
    local body, err = g:get(url)
    if not body then return nil, err end
    for _, v in ipairs(body.value or {}) do out[#out + 1] = v end
    url = body["@odata.nextLink"]
  end
  return out
end

function M:gpost(path, body) return need(self, "graph"):post(path, body) end
-- Graph's upsert by alternate key: PATCH key with "Prefer: create-if-missing" -> the new object
-- (201) or true (204: it existed and was updated).  Idempotent, so the transport may repeat it.
function M:gupsert(key, body)
  local r, err = need(self, "graph"):patch(key, body, { headers = { Prefer = "create-if-missing" },
                                                        idempotent = true })
  if r == nil and err == nil then return true end
  return r, err
end
function M:gpatch(path, body)
  local r, err = need(self, "graph"):patch(path, body)
  if r == nil and err == nil then return true end
  return r, err
end
function M:gdelete(path)
  local r, err = need(self, "graph"):delete(path)
  if r == nil and err == nil then return true end
  return r, err
end

-- Run an EXO cmdlet: list of objects, or nil, err (err.code = exception short name).
function M:xo(cmdlet, params, opts)
  return need(self, "exo"):invoke(cmdlet, params or {}, opts)
end

local function exo_code(err)
  if type(err) ~= "table" then return tostring(err):match("([%w]+Exception)") end
  return err.code or (err.exception and err.exception:match("([%w_]+)$"))
end
M.exo_code = exo_code

local function not_found(err)
  local c = exo_code(err)
  return c == "ManagementObjectNotFoundException" or c == "MigrationEndpointNotFoundException"
      or (type(err) == "table" and err.status == 404)
end

local function already_exists(err)
  local c = exo_code(err) or ""
  local m = tostring(err):lower()
  return c:find("AlreadyExists", 1, true) ~= nil or m:find("already exists", 1, true) ~= nil
      or (type(err) == "table" and err.status == 409)
end

-- Poll fn() (-> value | nil) until it returns a value or `settle` seconds pass.  Used after a
-- create whose outcome is unknown, and to wait for replication of a fresh object.
function M:eventually(fn, seconds)
  local deadline = self.now() + (seconds or self.settle)
  while true do
    local v, err = fn()
    if v ~= nil then return v end
    if self.now() >= deadline then return nil, err end
    self.sleep(self.poll)
  end
end

-- What a failed create says about trying again: "refused" (401, 403, 404: nothing was made and
-- nothing will be), "answered" (another 4xx: perhaps "already exists" -- our own object, not yet
-- visible -- so look for it, but do not create again), or nil (transport error, 408, 429, 5xx:
-- the outcome is unknown).
local REFUSED_CODES = {
  VaultAlreadyExists = true,   -- a name taken elsewhere: PUT on our own vault updates it instead
}
local function refusal(err)
  if type(err) == "table" and err.refused then return "refused" end
  local s = type(err) == "table" and tonumber(err.status)
  if not s or s < 400 or s >= 500 or s == 408 or s == 429 then return nil end
  if s == 401 or s == 403 or s == 404 or REFUSED_CODES[err.code] then return "refused" end
  return "answered"
end

-- Change through the plan, never twice: on failure, look (find()) for `settle` seconds; found ->
-- the change did happen (its response was lost, or a 500 came after the work was done); not
-- found -> try again (attempts), unless the service's answer was definite (refusal above).
-- c.kind is the plan kind (create, add, update, delete, action).  A create waits, on success,
-- until find() sees the object, so the next step can use it despite replication lag.
-- Returns the result (the object found, for a create) or nil, "planned" | err.
function M:checked(c, find, attempts)
  attempts = attempts or 3
  local last
  for i = 1, attempts do
    local change = {}
    for k, v in pairs(c) do change[k] = v end
    if i > 1 then change.note = (c.note and (c.note .. "; ") or "") .. "retry " .. i end
    local res, err = self.plan:change(change)
    if err == "planned" or err == "unchanged" then return nil, err end
    if res ~= nil then
      if c.kind ~= "create" then return res end
      return self:eventually(find) or res          -- read our own write (replication lag)
    end
    last = err
    local why = refusal(err)
    if why == "refused" then return nil, err end
    if self.settle > 2 then
      require("t2t.http").waiting(self.settle, "giving up looking for the result of: " .. c.target ..
        " (it is tried again only if not found)", "the outcome is unknown (" ..
        tostring(type(err) == "table" and (err.code or err.status) or err) .. ")")
    end
    local found = self:eventually(find)
    if found then
      self:note("  (the response was lost; found that %s was done, by re-reading)", c.target)
      self.plan:resolved(change, "found by re-reading after the response was lost")
      return found
    end
    if why == "answered" then return nil, err end
  end
  return nil, last
end

-- Create through the plan, never twice (checked, kind "create").
function M:create(c, find, attempts)
  local change = {}
  for k, v in pairs(c) do change[k] = v end
  change.kind = "create"
  return self:checked(change, find, attempts)
end

---------------------------------------------------------------------------------------------
-- Names and URLs.

-- The app's display name: the legacy script's "<target>_Friends_<source>" without its random
-- suffix, so that a re-run finds the same app instead of creating another.  target and source
-- are the tenants' initial domains (or their labels), never profile names.
function M.app_name(target, source)
  local function label(s) return (tostring(s):match("^([^.]+)")) end
  return label(target) .. "_Friends_" .. label(source)
end

-- label(): the first label of the tenant's initial domain (fabrikam of fabrikam.onmicrosoft.com).
-- Names derive from the tenant itself, never from a profile name someone may rename.
function M:label()
  return (type(self.domain) == "string" and self.domain:match("^([^.]+)")) or self.name
end

-- exo_name(s) -> s within Exchange's 64-character Name limit (the script cut its names to 64):
-- a longer name keeps its first 55 characters plus "_" and 8 hex digits of its SHA-256, so the
-- result is the same on every run and two long names stay apart.
function M.exo_name(s)
  s = tostring(s)
  if #s <= 64 then return s end
  local h = require("t2t.crypto").sha256_hex(s):sub(1, 8)
  local n = 55                               -- never inside a UTF-8 character
  while n > 0 and (s:byte(n + 1) or 0) >= 0x80 and (s:byte(n + 1) or 0) < 0xC0 do n = n - 1 end
  return s:sub(1, n) .. "_" .. h
end

-- app_key(source_tenant_id) -> the migration app's uniqueName: one app per source tenant, found
-- again whatever its display name or the profile names are.
function M.app_key(source_tid) return "t2t-xtm-" .. lower(tostring(source_tid)) end

-- Admin consent URL for tenant (GUID or domain) (wire.md §1.9).
function M.consent_url(cloud, tenant, app_id)
  local c = M.CLOUDS[cloud or "global"] or M.CLOUDS.global
  return string.format("%s/%s/adminconsent?client_id=%s&redirect_uri=%s", c.login, tenant, app_id,
                       urlencode(M.REDIRECT))
end

function M:remote_server() return M.CLOUDS[self.cloud].remote_server end

-- This tenant's id and initial domain from Graph /organization (when not given).
function M:discover()
  if self.id and self.domain then return self end
  local org, err = self:glist("/organization")
  if not org or not org[1] then
    return nil, failure("Discover", "cannot read the organization of tenant %s: %s", tostring(self.name), tostring(err))
  end
  self.id = self.id or org[1].id
  for _, d in ipairs(org[1].verifiedDomains or {}) do
    if d.isInitial then self.domain = self.domain or d.name end
  end
  self.name = self.name or (self.domain and self.domain:match("^([^.]+)"))
  return self
end

---------------------------------------------------------------------------------------------
-- Entra ID: application, credentials, service principal, consent, invitation.

local function rra_has(rra, resource_app, role_id)
  for _, r in ipairs(rra or {}) do
    if lower(r.resourceAppId) == lower(resource_app) then
      for _, a in ipairs(r.resourceAccess or {}) do
        if lower(a.id) == lower(role_id) and a.type == "Role" then return true end
      end
    end
  end
  return false
end
M.rra_has = rra_has

-- The requiredResourceAccess the app needs, merged into what it has (nothing is removed).
local function rra_merge(rra, wanted)
  local out = copy(rra or {})
  for _, w in ipairs(wanted) do
    if not rra_has(out, w[1], w[2]) then
      local entry
      for _, r in ipairs(out) do
        if lower(r.resourceAppId) == lower(w[1]) then entry = r end
      end
      if not entry then
        entry = { resourceAppId = w[1], resourceAccess = {} }
        out[#out + 1] = entry
      end
      entry.resourceAccess = entry.resourceAccess or {}
      entry.resourceAccess[#entry.resourceAccess + 1] = { id = w[2], type = "Role" }
    end
  end
  return out
end

-- Applications with this display name, oldest first.
function M:find_apps(name)
  local list, err = self:glist("/applications?$filter=displayName eq '" .. odata_quote(name) .. "'")
  if not list then return nil, err end
  local out = {}
  for _, a in ipairs(list) do
    if a.displayName == name then out[#out + 1] = a end
  end
  table.sort(out, function(a, b) return (a.createdDateTime or "") < (b.createdDateTime or "") end)
  return out
end

-- The app's uniqueName: Graph's client-chosen alternate key, which makes its create an
-- idempotent upsert (PATCH /applications(uniqueName='...') + Prefer: create-if-missing).
function M.app_unique_name(name)
  return "t2t-" .. (tostring(name):lower():gsub("[^%w]+", "-"):gsub("^%-+", ""):gsub("%-+$", ""))
end

-- The existing app to use: by --app-id, else t2t's own (its uniqueName `key`, or the one an
-- earlier t2t derived from the name), else one named `name` or `also` (made before t2t keyed its
-- apps, by hand, or under a name from a profile: the oldest).  -> app | nil (none) | nil, err
function M:find_app(name, app_id, key, also)
  if app_id then
    local app, err = self:gget("/applications(appId='" .. app_id .. "')")
    if not app then
      return nil, err or failure("AppNotFound", "no application with appId %s in tenant %s " ..
        "(--app-id must name an app registered in the target tenant)", app_id, self.name)
    end
    return app
  end
  local unique = key or M.app_unique_name(name)
  local own, err = self:gget("/applications(uniqueName='" .. odata_quote(unique) .. "')")
  if err then return nil, err end
  for _, k in ipairs(key and { M.app_unique_name(name), also and M.app_unique_name(also) } or {}) do
    if own then break end
    own, err = self:gget("/applications(uniqueName='" .. odata_quote(k) .. "')")
    if err then return nil, err end
  end
  local apps
  apps, err = self:find_apps(name)
  if apps and #apps == 0 and also then apps, err = self:find_apps(also) end
  if not apps then return nil, err end
  local others = {}
  for _, a in ipairs(apps) do
    if not (own and a.id == own.id) then others[#others + 1] = a.appId end
  end
  local app = own or apps[1]
  if #others > (own and 0 or 1) then
    self:warn("%d other application(s) are named '%s' (%s): t2t did not make them -- it keys its own " ..
              "by uniqueName '%s' and never creates a second -- so they come from another tool or a " ..
              "person; t2t uses appId %s; remove the others in Entra ID > App registrations if unused",
              own and #others or #others - 1, name, table.concat(others, ", "), unique, app.appId)
  end
  return app
end

-- ensure_app{name, invite = bool, app_id = existing appId, key = uniqueName (M.app_key),
-- also = an older display name}: the multi-tenant migration app with the https://office.com
-- redirect and Mailbox.Migration (+ User.Invite.All when invite).
function M:ensure_app(o)
  local name = assert(o.name or o.app_id, "ensure_app: name or app_id")
  local wanted = { { M.EXO_APP_ID, M.ROLE["Mailbox.Migration"] } }
  if o.invite then wanted[2] = { M.GRAPH_APP_ID, M.ROLE["User.Invite.All"] } end
  local app, err = self:find_app(name, o.app_id, o.key, o.also)
  if err then return nil, err end
  if not app then
    local unique = o.key or M.app_unique_name(name)
    local key = "/applications(uniqueName='" .. odata_quote(unique) .. "')"
    local body = {
      displayName = name, signInAudience = "AzureADMultipleOrgs",
      web = { redirectUris = { M.REDIRECT }, homePageUrl = M.REDIRECT },
      requiredResourceAccess = rra_merge({}, wanted),
    }
    local created
    created, err = self:create({
      target = "application '" .. name .. "'", tenant = self.name, operation = "ensure_app",
      after = body, note = "uniqueName " .. unique .. ": created at most once, whatever is retried",
      -- an upsert: repeating it (a lost response, a retry) updates the same app, never a second
      apply = function() return self:gupsert(key, body) end,
    }, function() return (self:gget(key)) end)
    if err == "planned" then
      return { planned = true, displayName = name, appId = "(new app id)", id = "(new)" }
    end
    return created, err
  end
  -- Exists: bring the properties we own up to date, keep everything else.
  local before = { signInAudience = app.signInAudience,
                   redirectUris = app.web and app.web.redirectUris or {},
                   requiredResourceAccess = app.requiredResourceAccess or {} }
  local after = copy(before)
  after.signInAudience = "AzureADMultipleOrgs"
  if not contains_ci(after.redirectUris, M.REDIRECT) then
    after.redirectUris[#after.redirectUris + 1] = M.REDIRECT
  end
  after.requiredResourceAccess = rra_merge(after.requiredResourceAccess, wanted)
  local _, uerr = self.plan:change {
    kind = "update", target = "application '" .. app.displayName .. "'", tenant = self.name,
    operation = "ensure_app", before = before, after = after,
    apply = function()
      return self:gpatch("/applications/" .. app.id, {
        signInAudience = after.signInAudience,
        web = { redirectUris = after.redirectUris },
        requiredResourceAccess = after.requiredResourceAccess })
    end,
  }
  if uerr == "unchanged" then
    self:note("= application '%s' (appId %s) is up to date", app.displayName, app.appId)
  elseif uerr and uerr ~= "planned" then
    return nil, uerr
  end
  return app
end

-- The service principal of appId in this tenant, or nil.
function M:find_sp(app_id)
  local list, err = self:glist("/servicePrincipals?$filter=appId eq '" .. odata_quote(app_id) .. "'")
  if not list then return nil, err end
  for _, sp in ipairs(list) do
    if lower(sp.appId) == lower(app_id) then return sp end
  end
  return nil
end

-- ensure_sp(app): the app's service principal in this tenant (the first half of consent).
function M:ensure_sp(app)
  local app_id = type(app) == "table" and app.appId or app
  local label = type(app) == "table" and app.displayName or app_id
  if type(app) == "table" and app.planned then
    self.plan:change { kind = "create", target = "service principal for '" .. label .. "'", tenant = self.name,
                       operation = "ensure_sp", after = { appId = app_id }, apply = function() end }
    return { planned = true, appId = app_id, id = "(new)", displayName = label }
  end
  local sp, err = self:find_sp(app_id)
  if sp then
    self:note("= service principal for '%s' exists (%s)", label, sp.id)
    return sp
  end
  if err then return nil, err end
  local created
  created, err = self:create({
    target = "service principal for '" .. label .. "'", tenant = self.name, operation = "ensure_sp",
    after = { appId = app_id },
    apply = function()
      -- a fresh app may not have replicated yet: retry "not found"-like answers for a while
      local r, e
      local deadline = self.now() + self.settle
      repeat
        r, e = self:gpost("/servicePrincipals", { appId = app_id })
        if r then return r end
        if type(e) == "table" and (e.status == 409 or tostring(e.message):find("already", 1, true)) then
          return self:eventually(function() return self:find_sp(app_id) end) or nil, e
        end
        if not (type(e) == "table" and (e.status == 400 or e.status == 404)) then return nil, e end
        self.sleep(self.poll)
      until self.now() >= deadline
      return nil, e
    end,
  }, function() return self:find_sp(app_id) end)
  if err == "planned" then return { planned = true, appId = app_id, id = "(new)", displayName = label } end
  return created, err
end

-- App role ids assigned to client SP sp_id on resource SP res_id: set of lower-case role ids.
function M:assigned_roles(sp_id, res_id)
  local list, err = self:glist("/servicePrincipals/" .. sp_id .. "/appRoleAssignments")
  if not list then return nil, err end
  local out = {}
  for _, a in ipairs(list) do
    if lower(a.resourceId) == lower(res_id) then out[lower(a.appRoleId)] = true end
  end
  return out
end

-- grant_consent(sp, resource_app_id, role_name): the app role assignment that admin consent
-- makes (ms-setup-and-prep.md §1.7, §4.2).
function M:grant_consent(sp, resource_app_id, role)
  local role_id = M.ROLE[role] or role
  local res, err = self:find_sp(resource_app_id)
  if not res then
    return nil, err or failure("NoResource", "tenant %s has no service principal for %s: %s",
      self.name, resource_app_id, resource_app_id == M.EXO_APP_ID and
      "Exchange Online is not enabled in this tenant (no Exchange licence?)" or "the resource is not enabled")
  end
  local target = string.format("consent: %s on %s for '%s'", role, res.displayName or resource_app_id,
                               sp.displayName or sp.appId)
  if not sp.planned then
    local have
    have, err = self:assigned_roles(sp.id, res.id)
    if not have then return nil, err end
    if have[lower(role_id)] then
      self:note("= %s (granted)", target)
      return true
    end
  end
  local body = { principalId = sp.id, resourceId = res.id, appRoleId = role_id }
  local r
  r, err = self:create({
    target = target, tenant = self.name, operation = "grant_consent", after = body,
    apply = function()
      local a, e = self:gpost("/servicePrincipals/" .. res.id .. "/appRoleAssignedTo", body)
      if not a and tostring(type(e) == "table" and e.message or e):find("already exists", 1, true) then
        return true
      end
      return a, e
    end,
  }, function()
    local have = self:assigned_roles(sp.id, res.id)
    return have and have[lower(role_id)] or nil
  end)
  if err == "planned" then return true end
  return r and true or nil, err
end

-- consent_status(app_id, owner_tenant_id): is the app instantiated and consented here?
-- {sp, owner_ok, roles = {name = true}, consented (Mailbox.Migration granted)}.
function M:consent_status(app_id, owner_tid)
  local sp, err = self:find_sp(app_id)
  if err then return nil, err end
  local st = { sp = sp, roles = {}, consented = false }
  if not sp then return st end
  st.owner = sp.appOwnerOrganizationId
  st.owner_ok = owner_tid == nil or lower(st.owner) == lower(owner_tid)
  for _, pair in ipairs { { M.EXO_APP_ID, "Mailbox.Migration" }, { M.GRAPH_APP_ID, "User.Invite.All" } } do
    local res = self:find_sp(pair[1])
    local have = res and self:assigned_roles(sp.id, res.id)
    if have and have[lower(M.ROLE[pair[2]])] then st.roles[pair[2]] = true end
  end
  st.consented = st.roles["Mailbox.Migration"] == true
  return st
end

-- The invitation text of the legacy script (ms-setup-and-prep.md §1.3 A.11).
function M.invitation_message(target_label, app_name, app_id)
  return string.format("Organization [%s] wants to pull mailboxes from your organization using the " ..
    "application [%s]. Please consent to the application as an administrator of your organization, " ..
    "then put the application id [%s] in the OAuthApplicationId of the organization relationship " ..
    "with [%s]. If the button above does not work, paste the invitation link into your browser.",
    target_label, app_name, app_id, target_label)
end

-- invite(email, {redirect, app, resend}): a B2B invitation for the source admin whose
-- redirect is the source consent URL.  Skipped when that guest already exists (resend sends again).
function M:invite(email, o)
  local existing = self:glist("/users?$filter=mail eq '" .. odata_quote(email) .. "'")
  if existing and existing[1] and not o.resend then
    self:note("= %s is already invited (guest %s); --reinvite sends the invitation again", email,
              existing[1].id)
    return existing[1]
  end
  local body = {
    invitedUserEmailAddress = email, inviteRedirectUrl = o.redirect, sendInvitationMessage = true,
    invitedUserMessageInfo = { customizedMessageBody = M.invitation_message(self.name, o.app.displayName,
                                                                            o.app.appId) },
  }
  local r, err = self:create({
    target = "invitation for " .. email, tenant = self.name, operation = "invite",
    after = { invitedUserEmailAddress = email, inviteRedirectUrl = o.redirect },
    apply = function()
      local inv, e = self:gpost("/invitations", body)
      if not inv and type(e) == "table" and e.status == 403 then
        return nil, failure("InviteDenied", "the invitation to %s was refused (403): the app needs the " ..
          "User.Invite.All role consented in %s, and B2B invitations must be allowed (Entra ID > External " ..
          "Identities > External collaboration settings); or send the consent URL by mail yourself",
          email, self.name)
      end
      return inv, e
    end,
  }, function()
    local l = self:glist("/users?$filter=mail eq '" .. odata_quote(email) .. "'")
    return l and l[1]
  end)
  if err == "planned" then return true end
  if r then self:note("Successfully sent invitation to %s", email) end
  return r, err
end

-- Credentials: client secrets (never left live unknown), certificates, expiry.
require("t2t.tenant.credentials")(M, { failure = failure })

-- Exchange Online: organization customization, relationships, scope group, endpoint.
require("t2t.tenant.exchange")(M, { failure = failure, copy = copy, contains_ci = contains_ci,
  exo_code = exo_code, not_found = not_found, already_exists = already_exists, lower = lower,
  odata_quote = odata_quote })

return M
