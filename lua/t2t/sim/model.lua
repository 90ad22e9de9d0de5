-- t2t.sim.model: the simulator's state (plain, JSON-serialisable tables; layout in
-- docs/simulator.md), a seeded PRNG, and the lookups every service shares.  Indexes are kept
-- beside the state (weak-keyed side tables), never in it, so a dump is just the data and a load
-- rebuilds them on first use.
local cjson = require "cjson"
local index = require "t2t.sim.index"    -- ordered listing indexes and the delta change log

local M = {}

local fmt, lower, sub = string.format, string.lower, string.sub

-- A private cjson instance: our number precision and sparse-array policy leave the global alone.
local json = cjson.new()
json.encode_sparse_array(false)
json.encode_max_depth(1000)
json.decode_max_depth(1000)
M.cjson = json

M.ZERO_GUID = "00000000-0000-0000-0000-000000000000"

---------------------------------------------------------------------------------------------
-- PRNG: splitmix64 (Steele et al.), one integer state per stream, no closures.  Fast in Lua 5.4
-- (64-bit integer arithmetic wraps) and good enough for test data and fault draws.
local Rng = {}
Rng.__index = Rng

local GOLDEN = 0x9E3779B97F4A7C15

-- rng(seed): seed may be an integer or a string (hashed).
function M.rng(seed)
  local s = seed or 0
  if type(s) == "string" then
    local h = 0x6A09E667F3BCC909
    for i = 1, #s do h = (h ~ s:byte(i)) * 0x100000001B3 end
    s = h
  else
    s = math.tointeger(s) or math.floor(s)
  end
  return setmetatable({ s = s }, Rng)
end

-- next() -> a uniformly distributed 64-bit integer.
function Rng:next()
  local z = self.s + GOLDEN
  self.s = z
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return z ~ (z >> 31)
end

-- int(a, b) -> integer in [a, b]; int(n) -> [1, n].
function Rng:int(a, b)
  if not b then a, b = 1, a end
  local z = self.s + GOLDEN
  self.s = z
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  z = z ~ (z >> 31)
  return a + (z >> 1) % (b - a + 1)
end

-- float() -> [0, 1).
function Rng:float()
  return (self:next() >> 11) * 0x1p-53
end

-- chance(p) -> true with probability p.
function Rng:chance(p)
  return p > 0 and (self:next() >> 11) * 0x1p-53 < p
end

-- pick(list) -> a random element.
function Rng:pick(t)
  return t[self:int(1, #t)]
end

-- guid() -> random (version 4) GUID, lower-case.
function Rng:guid()
  local a, b = self:next(), self:next()
  return fmt("%08x-%04x-4%03x-%04x-%012x", a >> 32, (a >> 16) & 0xffff, a & 0xfff,
             0x8000 | ((b >> 48) & 0x3fff), b & 0xffffffffffff)
end

-- hex(n) -> n random lower-case hex digits (n <= 32).
function Rng:hex(n)
  local a, b = self:next(), self:next()
  local s = fmt("%016x%016x", a, b)
  return sub(s, 1, n)
end

-- fork(label) -> an independent stream derived from this one and a label, so adding draws to
-- one part of the simulator does not shift the values another part sees.
function Rng:fork(label)
  local r = M.rng(tostring(label))
  r.s = r.s ~ self.s
  r:next()
  return r
end
M.Rng = Rng

---------------------------------------------------------------------------------------------
-- JSON arrays.  cjson 2.1 (Debian 12) has no array marker, so an empty table is ambiguous.
-- Convention: response encoders treat an empty table as [] unless it carries OBJECT_MT; use
-- M.object() for an empty JSON object.  ARRAY_MT marks a (possibly empty) array explicitly.
M.ARRAY_MT = { __name = "t2t.sim.array" }
M.OBJECT_MT = { __name = "t2t.sim.object" }
function M.array(t) return setmetatable(t or {}, M.ARRAY_MT) end
function M.object(t) return setmetatable(t or {}, M.OBJECT_MT) end

---------------------------------------------------------------------------------------------
-- State.

-- new_state(seed) -> an empty state.
function M.new_state(seed)
  return { version = 1, seed = seed or 0, tenants = {}, domains = {}, apps_by_appid = {} }
end

-- new_tenant{id, name, display_name, cloud} -> an empty tenant (not yet added).
function M.new_tenant(o)
  local initial = o.name .. ".onmicrosoft.com"
  return {
    id = o.id, name = o.name, initial_domain = initial,
    display_name = o.display_name or o.name, dehydrated = false, cloud = o.cloud or "global",
    created = o.created or 0,
    domains = {},
    dir = { objects = {}, by_appid_sp = {}, app_role_assignments = {}, role_assignments = {},
            role_definitions = {}, skus = {}, members = {} },
    exo = { recipients = {}, org_config = {}, accepted_domains = {}, org_relationships = {},
            migration_endpoints = {}, batches = {}, move_requests = {}, dkim = {} },
    azure = { subscriptions = {} },
  }
end

-- add_tenant(state, tenant) -> tenant; registers its domains.
function M.add_tenant(state, t)
  state.tenants[t.id] = t
  state.domains[lower(t.initial_domain)] = t.id
  for _, d in ipairs(t.domains) do state.domains[lower(d.id)] = t.id end
  return t
end

-- add_domain(state, tenant, domain_table) -> domain table (Graph `domain` shape).
function M.add_domain(state, t, d)
  t.domains[#t.domains + 1] = d
  state.domains[lower(d.id)] = t.id
  return d
end

-- tenant(state, key) -> tenant | nil: key is a tenant id, a domain of it, or its short name.
function M.tenant(state, key)
  if type(key) ~= "string" then return nil end
  local t = state.tenants[key]
  if t then return t end
  key = lower(key)
  t = state.tenants[key] or state.tenants[state.domains[key] or ""]
  if t then return t end
  for _, x in pairs(state.tenants) do
    if x.name == key then return x end
  end
  return nil
end

---------------------------------------------------------------------------------------------
-- Indexes beside the state.  idx(tenant) -> { upn, recip, ara_by_principal } built on first use
-- and kept current by the add_* helpers; services that change keys call M.reindex(tenant).
local index_cache = setmetatable({}, { __mode = "k" })

local function key_add(map, k, v)
  k = lower(k)
  local cur = map[k]
  if cur == nil or cur == v then
    map[k] = v
  elseif type(cur) == "table" then
    cur[#cur + 1] = v
  else
    map[k] = { cur, v }        -- ambiguous: the service reports it like EXO does
  end
end

-- Keys by which EXO resolves -Identity: Guid, ExchangeGuid, EDOID, Name, Alias, DN,
-- LegacyExchangeDN, every SMTP/X500 proxy (address part) and the primary SMTP address.
local function index_recipient(map, r)
  local g = r.Guid
  if r.Guid then key_add(map, r.Guid, g) end
  if r.ExchangeGuid and r.ExchangeGuid ~= M.ZERO_GUID then key_add(map, r.ExchangeGuid, g) end
  if r.ExternalDirectoryObjectId then key_add(map, r.ExternalDirectoryObjectId, g) end
  if r.Name then key_add(map, r.Name, g) end
  if r.Alias then key_add(map, r.Alias, g) end
  if r.DistinguishedName then key_add(map, r.DistinguishedName, g) end
  if r.LegacyExchangeDN then key_add(map, r.LegacyExchangeDN, g) end
  if r.PrimarySmtpAddress then key_add(map, r.PrimarySmtpAddress, g) end
  local addrs = r.EmailAddresses
  if addrs then
    for i = 1, #addrs do
      local a = addrs[i]
      local c = a:find(":", 1, true)
      if c then
        local addr = sub(a, c + 1)
        if addr ~= r.PrimarySmtpAddress then key_add(map, addr, g) end
      end
    end
  end
end

local function key_remove(map, k, v)
  k = lower(k)
  local cur = map[k]
  if cur == v then
    map[k] = nil
  elseif type(cur) == "table" then
    for i = #cur, 1, -1 do if cur[i] == v then table.remove(cur, i) end end
    if #cur == 1 then map[k] = cur[1] elseif #cur == 0 then map[k] = nil end
  end
end

local function build_index(t)
  local ix = { upn = {}, recip = {}, ara_by_principal = {}, members_of = {} }
  for id, o in pairs(t.dir.objects) do
    if o.userPrincipalName then ix.upn[lower(o.userPrincipalName)] = id end
  end
  for _, r in pairs(t.exo.recipients) do index_recipient(ix.recip, r) end
  for id, a in pairs(t.dir.app_role_assignments) do
    local l = ix.ara_by_principal[a.principalId]
    if not l then l = {}; ix.ara_by_principal[a.principalId] = l end
    l[id] = true
  end
  for gid, set in pairs(t.dir.members) do
    for mid in pairs(set) do
      local l = ix.members_of[mid]
      if not l then l = {}; ix.members_of[mid] = l end
      l[gid] = true
    end
  end
  index_cache[t] = ix
  return ix
end

-- idx(tenant) -> the tenant's side indexes (built on first use).
function M.idx(t)
  return index_cache[t] or build_index(t)
end

-- reindex(tenant): drop the side indexes (they are rebuilt on next use).
function M.reindex(t) index_cache[t] = nil end

---------------------------------------------------------------------------------------------
-- Directory (Graph) objects.

local ODATA_SP = "#microsoft.graph.servicePrincipal"
local ODATA_APP = "#microsoft.graph.application"
M.ODATA = { user = "#microsoft.graph.user", group = "#microsoft.graph.group",
            application = ODATA_APP, servicePrincipal = ODATA_SP }

-- add_object(state, tenant, obj) -> obj: a directory object with obj.id and obj["@odata.type"].
function M.add_object(state, t, o)
  local dir = t.dir
  dir.objects[o.id] = o
  local ty = o["@odata.type"]
  if ty == ODATA_SP then
    dir.by_appid_sp[o.appId] = o.id
  elseif ty == ODATA_APP then
    state.apps_by_appid[o.appId] = { tenant = t.id, id = o.id }
  end
  local ix = index_cache[t]
  if ix and o.userPrincipalName then ix.upn[lower(o.userPrincipalName)] = o.id end
  index.dir_add(t, o)
  index.changed(t, o)
  return o
end

-- remove_object(state, tenant, id): deletes the object and what hangs off it.
function M.remove_object(state, t, id)
  local dir = t.dir
  local o = dir.objects[id]
  if not o then return end
  dir.objects[id] = nil
  index.dir_remove(t, o)
  index.changed(t, o)
  if o["@odata.type"] == ODATA_SP and dir.by_appid_sp[o.appId] == id then
    dir.by_appid_sp[o.appId] = nil
  elseif o["@odata.type"] == ODATA_APP then
    local a = state.apps_by_appid[o.appId]
    if a and a.id == id then state.apps_by_appid[o.appId] = nil end
  end
  for aid, a in pairs(dir.app_role_assignments) do
    if a.principalId == id or a.resourceId == id then dir.app_role_assignments[aid] = nil end
  end
  for rid, a in pairs(dir.role_assignments) do
    if a.principalId == id then dir.role_assignments[rid] = nil end
  end
  dir.members[id] = nil
  for _, set in pairs(dir.members) do set[id] = nil end
  M.reindex(t)
end

-- sp_by_appid(tenant, appId) -> service principal object | nil.
function M.sp_by_appid(t, appid)
  local id = t.dir.by_appid_sp[appid]
  return id and t.dir.objects[id]
end

-- user_by_upn(tenant, upn) -> user object | nil (case-insensitive).
function M.user_by_upn(t, upn)
  local id = M.idx(t).upn[lower(upn)]
  return id and t.dir.objects[id]
end

-- add_app_role_assignment(tenant, a) -> a: a = {id, principalId, resourceId, appRoleId,
-- principalType?, principalDisplayName?, resourceDisplayName?, created?}.
function M.add_app_role_assignment(t, a)
  t.dir.app_role_assignments[a.id] = a
  local ix = index_cache[t]
  if ix then
    local l = ix.ara_by_principal[a.principalId]
    if not l then l = {}; ix.ara_by_principal[a.principalId] = l end
    l[a.id] = true
  end
  return a
end

-- remove_app_role_assignment(tenant, id)
function M.remove_app_role_assignment(t, id)
  local a = t.dir.app_role_assignments[id]
  if not a then return end
  t.dir.app_role_assignments[id] = nil
  local ix = index_cache[t]
  local l = ix and ix.ara_by_principal[a.principalId]
  if l then l[id] = nil end
end

-- add_role_assignment(tenant, a) -> a: a = {id, roleDefinitionId, principalId, directoryScopeId}.
function M.add_role_assignment(t, a)
  a.directoryScopeId = a.directoryScopeId or "/"
  t.dir.role_assignments[a.id] = a
  return a
end

-- add_member(tenant, group_id, member_id)
function M.add_member(t, gid, mid)
  local set = t.dir.members[gid]
  if not set then set = {}; t.dir.members[gid] = set end
  set[mid] = true
  local ix = index_cache[t]
  if ix then
    local l = ix.members_of[mid]
    if not l then l = {}; ix.members_of[mid] = l end
    l[gid] = true
  end
end

-- roles_for(tenant, sp_id, resource_appid) -> list of app role VALUES (e.g.
-- "Exchange.ManageAsApp") that principal sp_id holds on the resource's service principal in
-- this tenant (consented appRoleAssignments), sorted; {} when none.
function M.roles_for(t, principal_id, resource_appid)
  local out = {}
  local res = M.sp_by_appid(t, resource_appid)
  if not res then return out end
  local byid = {}
  for _, r in ipairs(res.appRoles or {}) do
    if r.isEnabled ~= false then byid[r.id] = r.value end
  end
  local ids = M.idx(t).ara_by_principal[principal_id]
  if not ids then return out end
  local seen = {}
  for aid in pairs(ids) do
    local a = t.dir.app_role_assignments[aid]
    local v = a and a.resourceId == res.id and byid[a.appRoleId]
    if v and not seen[v] then seen[v] = true; out[#out + 1] = v end
  end
  table.sort(out)
  return out
end

-- wids_for(tenant, principal_id) -> list of directory role TEMPLATE ids held by the principal,
-- directly or through a (role-assignable) group it is a member of; sorted.
function M.wids_for(t, principal_id)
  local dir = t.dir
  local who = { [principal_id] = true }
  local groups = M.idx(t).members_of[principal_id]
  if groups then for g in pairs(groups) do who[g] = true end end
  local out, seen = {}, {}
  for _, a in pairs(dir.role_assignments) do
    if who[a.principalId] then
      local def = dir.role_definitions[a.roleDefinitionId]
      local tid = def and def.templateId or a.roleDefinitionId
      if not seen[tid] then seen[tid] = true; out[#out + 1] = tid end
    end
  end
  table.sort(out)
  return out
end

---------------------------------------------------------------------------------------------
-- Exchange recipients.

-- add_recipient(tenant, r) -> r: keyed by r.Guid; kept in the identity index.
function M.add_recipient(t, r)
  t.exo.recipients[r.Guid] = r
  index.recip_add(t, r)
  local ix = index_cache[t]
  if ix then index_recipient(ix.recip, r) end
  return r
end

-- update_recipient(tenant, r, changes): applies changes (a table of property = value; use
-- cjson.null to clear) keeping the identity index current.
function M.update_recipient(t, r, changes)
  index.recip_remove(t, r)                 -- its listing key may change (Name)
  local ix = index_cache[t]
  if ix then
    local k = {}
    index_recipient(k, r)
    for key in pairs(k) do key_remove(ix.recip, key, r.Guid) end
  end
  for k, v in pairs(changes) do
    if v == cjson.null then r[k] = nil else r[k] = v end
  end
  if ix then index_recipient(ix.recip, r) end
  index.recip_add(t, r)
  return r
end

-- remove_recipient(tenant, guid)
function M.remove_recipient(t, guid)
  local r = t.exo.recipients[guid]
  if not r then return end
  t.exo.recipients[guid] = nil
  index.recip_remove(t, r)
  local ix = index_cache[t]
  if ix then
    local k = {}
    index_recipient(k, r)
    for key in pairs(k) do key_remove(ix.recip, key, guid) end
  end
end

-- find_recipient(tenant, identity) -> r | nil, "notfound" | nil, "ambiguous", {r...}:
-- resolves like EXO -Identity (Guid, ExchangeGuid, EDOID, Name, Alias, DN, legacy DN, any
-- proxy address, with or without its "smtp:"/"x500:" prefix); case-insensitive.
function M.find_recipient(t, identity)
  if type(identity) ~= "string" then return nil, "notfound" end
  local map = M.idx(t).recip
  local hit = map[lower(identity)]
  if hit == nil then
    local c = identity:find(":", 1, true)
    if c and c <= 5 then hit = map[lower(sub(identity, c + 1))] end
  end
  if hit == nil then return nil, "notfound" end
  if type(hit) == "table" then
    local list = {}
    for i, g in ipairs(hit) do list[i] = t.exo.recipients[g] end
    return nil, "ambiguous", list
  end
  return t.exo.recipients[hit]
end

-- Properties a recipient does not store because they are derived or EXO defaults (seeding
-- 100k mailboxes keeps each recipient within a 32-slot table).  exo_property(r, name) reads a
-- property as Get-Mailbox would show it.
local GB = 1073741824
M.EXO_DERIVED = {
  Identity = function(r) return r.Name end,
  Id = function(r) return r.Name end,
  WindowsEmailAddress = function(r) return r.PrimarySmtpAddress end,
  MicrosoftOnlineServicesID = function(r) return r.UserPrincipalName end,
  ArchiveState = function(r)
    if not r.ArchiveGuid or r.ArchiveGuid == M.ZERO_GUID then return "None" end
    return r.AutoExpandingArchiveEnabled and "HostedProvisioned" or "Local"
  end,
  IsMailboxEnabled = function(r) return r.RecipientType == "UserMailbox" end,
}
M.EXO_DEFAULTS = {
  RetentionHoldEnabled = false, UsageLocation = "US", RecoverableItemsQuota = 30 * GB,
  RecoverableItemsWarningQuota = 20 * GB, ProhibitSendReceiveQuota = 100 * GB,
  ProhibitSendQuota = 99 * GB, IssueWarningQuota = 98 * GB, ArchiveQuota = 100 * GB,
  LitigationHoldEnabled = false, DelayHoldApplied = false, DelayReleaseHoldApplied = false,
  ComplianceTagHoldApplied = false, HiddenFromAddressListsEnabled = false, IsDirSynced = false,
  AuxArchiveCount = 0, AutoExpandingArchiveEnabled = false, ArchiveGuid = M.ZERO_GUID,
  ArchiveStatus = "None", IsInactiveMailbox = false, IsSoftDeletedByRemove = false,
}

-- The simulated Exchange Online module's SecureString key pair (wire.md §2.4): RSA 2048, made
-- on first use (it takes ~0.1 s) and kept in the state as a private PEM, so a state file keeps
-- its key.  securestring_key(state, create) -> Key | nil (none yet and create is false).
local ss_keys = setmetatable({}, { __mode = "k" })
function M.securestring_key(state, create)
  local k = ss_keys[state]
  if k then return k end
  local crypto = require "t2t.crypto"
  if not state.exo_securestring_pem then
    if not create then return nil end
    state.exo_securestring_pem = assert(crypto.generate_key("rsa", 2048)):private_pem()
  end
  k = assert(crypto.load_key(state.exo_securestring_pem))
  ss_keys[state] = k
  return k
end

-- open_securestring(state, value) -> the plaintext of a SecureString as the module sends it
-- (base64 of the RSA PKCS#1 v1.5 ciphertext) | nil.
function M.open_securestring(state, value)
  local k = type(value) == "string" and M.securestring_key(state, false)
  local ct = k and require("t2t.crypto").base64_decode(value)
  return ct and k:decrypt(ct, "pkcs1") or nil
end

-- exo_property(r, name) -> the stored value, else the derived one, else the EXO default.
function M.exo_property(r, name)
  local v = r[name]
  if v ~= nil then return v end
  local d = M.EXO_DERIVED[name]
  if d then return d(r) end
  return M.EXO_DEFAULTS[name]
end

---------------------------------------------------------------------------------------------
-- Serialisation.

-- The simulator's runtime stream (ids, secrets, fault draws are forks of it), continued across
-- loads: its position is kept in the state as `ids` (16 hex digits), so a second process started
-- on a saved state never hands out an id the first one already did, and the same seed with the
-- same requests still gives the same ids.  runtime_rng(state, seed) -> Rng bound to the state.
local runtime = setmetatable({}, { __mode = "k" })
function M.runtime_rng(state, seed)
  local r = M.rng(seed or state.seed or 0):fork("runtime")
  local pos = type(state.ids) == "string" and state.ids:match("^%x+$") and tonumber(state.ids, 16)
  if pos then r.s = math.tointeger(pos) or r.s end
  runtime[state] = r
  return r
end

-- encode_state(state) -> JSON text (with the runtime stream's position).
function M.encode_state(state)
  local r = runtime[state]
  if r then state.ids = fmt("%016x", r.s) end
  return json.encode(state)
end

-- decode_state(text) -> state | nil, err.  Indexes are rebuilt on first use.
function M.decode_state(text)
  local ok, st = pcall(json.decode, text)
  if not ok then return nil, "state is not valid JSON: " .. tostring(st) end
  if type(st) ~= "table" or type(st.tenants) ~= "table" then
    return nil, "state has no tenants table"
  end
  if st.version ~= 1 then return nil, "unsupported state version " .. tostring(st.version) end
  st.domains = st.domains or {}
  st.apps_by_appid = st.apps_by_appid or {}
  -- cjson 2.1 decodes every number as a float; ids and counts read better as integers
  st.seed = math.tointeger(st.seed) or st.seed
  return st
end

-- A save killed half-way leaves its temporary file (PATH.t2tXXXXXX, which holds secrets and
-- keys) beside the state: the first load or save of PATH in a process removes those no live
-- writer holds (t2t.core.fs.remove_stale).
local swept = {}
local function sweep(path)
  if swept[path] then return end
  swept[path] = true
  require("t2t.core.fs").remove_stale(path)
end
M.sweep = sweep

-- save(state, path) -> true | nil, err: atomic and durable (a synced 0600 temporary file renamed
-- over path: the state holds secrets and keys), so a kill leaves the old state or the new one,
-- never a torn file; a planted link or FIFO is replaced, never written through.
function M.save(state, path)
  sweep(path)
  return require("t2t.core.fs").write_private(path, M.encode_state(state))
end

-- load(path) -> state | nil, err.  A regular file of bounded size only (t2t.files).
function M.load(path)
  sweep(path)
  local text, err = require("t2t.files").read(path, "sim_state")
  if not text then return nil, err end
  return M.decode_state(text)
end

return M
