-- t2t.sim.population: mailboxes, mail users and mail contacts with every attribute user
-- preparation reads (ms-setup-and-prep.md §3.2, §5): archives and aux archives, holds of each
-- kind (tenant-level HoldTracking included), dumpster sizes, SubstrateHolds items, X500s,
-- foreign-domain proxies, dir-synced and previously-licensed targets, licences, delegates.
-- One place builds them for the control API (POST/PATCH /_sim/recipients, POST /_sim/scenario),
-- for `t2t sim --scenario FILE` and for the seed's delegates; docs/simulator.md "Population".
--
--   local pop = require "t2t.sim.population"
--   local r = pop.create(sim, tenant, {kind = "UserMailbox", alias = "lara", archive = true,
--                                      LitigationHoldEnabled = true, full_access = {"ada"}})
--   pop.update(sim, tenant, r, {org_hold = true, TotalDeletedItemSize = "35 GB"})
local model = require "t2t.sim.model"

local M = {}
local lower, fmt = string.lower, string.format
local ZERO = model.ZERO_GUID
local GB = 1073741824

M.LEGDN = "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn="

M.KINDS = { UserMailbox = "mailbox", SharedMailbox = "mailbox", RoomMailbox = "mailbox",
            EquipmentMailbox = "mailbox", MailUser = "mailuser", MailContact = "contact" }

-- A failure the control API answers with 400 and this message.
local function bad(f, ...) error({ population = true, message = fmt(f, ...) }, 0) end
M.bad = bad

local function guid(sim) return sim.rng:guid() end
local function hex32(sim) return (sim.rng:guid():gsub("%-", "")) end

-- "35 GB", "512 MB", "100 KB", "1234" or a number -> bytes.
local UNITS = { b = 1, kb = 1024, mb = 1048576, gb = GB, tb = 1024 * GB }
function M.bytes(v, what)
  if type(v) == "number" then return math.floor(v) end
  if type(v) == "string" then
    local n, u = v:match("^%s*([%d%.]+)%s*(%a*)%s*$")
    local m = n and UNITS[lower(u ~= "" and u or "b")]
    if m then return math.floor(tonumber(n) * m) end
  end
  bad("%s: '%s' is not a size (a number of bytes, or \"35 GB\", \"512 MB\")", what, tostring(v))
end

---------------------------------------------------------------------------------------------
-- Licences: {"e3" | "exo_plan1" | "ctudm" | skuPartNumber | skuId} -> the SKUs of the tenant.

local SKU_ALIAS = { e3 = "6fd2c87f-b296-42f0-b197-1e91e994b900",
                    exo_plan1 = "4b9405b0-7788-4568-add1-99614e613b69",
                    ctudm = "946ce899-873d-44bb-9d8b-671870cbfdbf" }

local function find_sku(t, key)
  key = SKU_ALIAS[lower(key)] or key
  for _, s in ipairs(t.dir.skus or {}) do
    if lower(s.skuId) == lower(key) or lower(s.skuPartNumber or "") == lower(key) then return s end
  end
  bad("tenant %s has no SKU '%s' (e3, exo_plan1, ctudm, or a skuPartNumber / skuId of its " ..
      "subscribedSkus)", t.name, tostring(key))
end

-- The EXO PersistedCapabilities a SKU brings (seed.CAPS: plan -> capability name).
local function capabilities(sku)
  local caps = require("t2t.sim.seed").CAPS[sku.skuId]
  return caps or {}
end

local function set_licenses(t, r, list)
  local u = t.dir.objects[r.ExternalDirectoryObjectId or ""]
  if not u then bad("%s has no directory user to license", r.Name) end
  for _, l in ipairs(u.assignedLicenses or {}) do                    -- give the old ones back
    for _, s in ipairs(t.dir.skus) do
      if s.skuId == l.skuId then s.consumedUnits = math.max(0, (s.consumedUnits or 1) - 1) end
    end
  end
  local assigned, caps, seen = {}, {}, {}
  for _, key in ipairs(list) do
    local s = find_sku(t, key)
    if not seen[s.skuId] then
      seen[s.skuId] = true
      assigned[#assigned + 1] = { skuId = s.skuId, disabledPlans = {} }
      s.consumedUnits = (s.consumedUnits or 0) + 1
      for _, c in ipairs(capabilities(s)) do caps[#caps + 1] = c end
    end
  end
  u.assignedLicenses = assigned
  u.usageLocation = u.usageLocation or "US"
  return caps
end

---------------------------------------------------------------------------------------------
-- Helpers that are not EXO properties (docs/simulator.md lists them).

local function names(t, list, what)
  local out = {}
  for i, id in ipairs(type(list) == "table" and list or { list }) do
    local x, why = model.find_recipient(t, id)
    if not x then bad("%s: no recipient '%s' in %s (%s)", what, tostring(id), t.name, why or "notfound") end
    out[i] = x.Name
  end
  return out
end

local function locations(t, r)
  local locs = {}
  local db = r.Database or (t.exo.databases and t.exo.databases[1]) or ZERO
  local suffix = ";" .. t.initial_domain .. ";" .. db
  if r.ExchangeGuid and r.ExchangeGuid ~= ZERO then
    locs[#locs + 1] = "1;" .. r.ExchangeGuid .. ";Primary" .. suffix
  end
  return locs, suffix
end

local HELPERS = {}

HELPERS.archive = function(c, v)
  if v then
    if not c.r.ArchiveGuid or c.r.ArchiveGuid == ZERO then c.ch.ArchiveGuid = guid(c.sim) end
    c.ch.ArchiveStatus = "Active"
  else
    c.ch.ArchiveGuid, c.ch.ArchiveStatus = ZERO, "None"
    c.ch.AuxArchiveCount, c.ch.AutoExpandingArchiveEnabled = 0, false
  end
end

HELPERS.aux_archives = function(c, v)
  local n = math.tointeger(tonumber(v))
  if not n or n < 0 then bad("aux_archives: a count, got '%s'", tostring(v)) end
  if n > 0 and (c.ch.ArchiveGuid or c.r.ArchiveGuid or ZERO) == ZERO then c.ch.ArchiveGuid = guid(c.sim) end
  if n > 0 then c.ch.ArchiveStatus = "Active" end
  c.ch.AuxArchiveCount, c.ch.AutoExpandingArchiveEnabled = n, n > 0
end

HELPERS.licenses = function(c, v)
  c.ch.PersistedCapabilities = set_licenses(c.t, c.r, type(v) == "table" and v or { v })
end

HELPERS.full_access = function(c, v) c.ch._FullAccess = names(c.t, v, "full_access") end
HELPERS.send_as = function(c, v) c.ch._SendAs = names(c.t, v, "send_as") end
HELPERS.send_on_behalf = function(c, v)
  c.ch.GrantSendOnBehalfTo = names(c.t, v, "send_on_behalf")
end

-- A tenant-wide retention policy that includes this mailbox (HoldTracking "ht":4).
HELPERS.org_hold = function(c, v)
  c.ch._OrgHolds = v and { "mbx" .. hex32(c.sim) .. ":1" } or model.cjson.null
end

HELPERS.substrate_hold_items = function(c, v)
  local n = math.tointeger(tonumber(v))
  if not n or n < 0 then bad("substrate_hold_items: a count, got '%s'", tostring(v)) end
  c.ch._SubstrateHoldsItems = n > 0 and n or model.cjson.null
end

-- A mail user that once had a mailbox: Get-User shows PreviousRecipientTypeDetails UserMailbox
-- and the object keeps that mailbox's ExchangeGuid (ms-setup-and-prep.md §5.3).
HELPERS.previous_mailbox = function(c, v)
  if v then
    c.ch.PreviousRecipientTypeDetails = "UserMailbox"
    c.ch.ExchangeGuid = guid(c.sim)
  else
    c.ch.PreviousRecipientTypeDetails = model.cjson.null
  end
end

-- A disabled archive left behind (UserAlreadyHasDemotedArchiveException, §8).
HELPERS.demoted_archive = function(c, v)
  c.ch.DisabledArchiveGuid = v and guid(c.sim) or model.cjson.null
  if v then c.ch.ArchiveGuid, c.ch.ArchiveStatus = ZERO, "None" end
end

HELPERS.dirsynced = function(c, v)
  c.ch.IsDirSynced = v and true or false
  local u = c.t.dir.objects[c.r.ExternalDirectoryObjectId or ""]
  if u then
    u.onPremisesSyncEnabled = v and true or nil
    u.onPremisesImmutableId = v and (u.onPremisesImmutableId or (hex32(c.sim):sub(1, 22) .. "==")) or nil
  end
end

-- Extra proxy addresses added to (add_addresses) or removed from (remove_addresses) the list.
HELPERS.add_addresses = function(c, v)
  local cur = c.ch.EmailAddresses or c.r.EmailAddresses or {}
  local out = {}
  for i, a in ipairs(cur) do out[i] = a end
  for _, a in ipairs(type(v) == "table" and v or { v }) do out[#out + 1] = a end
  c.ch.EmailAddresses = out
end
HELPERS.remove_addresses = function(c, v)
  local drop = {}
  for _, a in ipairs(type(v) == "table" and v or { v }) do drop[lower(a)] = true end
  local out = {}
  for _, a in ipairs(c.ch.EmailAddresses or c.r.EmailAddresses or {}) do
    if not drop[lower(a)] then out[#out + 1] = a end
  end
  c.ch.EmailAddresses = out
end

-- The ExchangeGuid (and ArchiveGuid) of another recipient, "TENANT/IDENTITY": a target that
-- already carries a source mailbox's GUIDs (prepared before, or by another tool).
HELPERS.copy_guids_from = function(c, v)
  local tkey, ident = tostring(v):match("^([^/]+)/(.+)$")
  local t = tkey and model.tenant(c.sim.state, tkey)
  local from = t and model.find_recipient(t, ident)
  if not from then bad("copy_guids_from: no recipient '%s' (TENANT/IDENTITY)", tostring(v)) end
  c.ch.ExchangeGuid = from.ExchangeGuid
  if from.ArchiveGuid and from.ArchiveGuid ~= ZERO then c.ch.ArchiveGuid, c.ch.ArchiveStatus = from.ArchiveGuid, "Active" end
end

local SIZES = { TotalItemSize = true, TotalDeletedItemSize = true, RecoverableItemsQuota = true,
                ProhibitSendReceiveQuota = true, ArchiveQuota = true }
-- Keys a spec may carry that are not properties (create only).
local SPEC_ONLY = { tenant = true, kind = true, alias = true, name = true, display_name = true,
                    first = true, last = true, primary = true, upn = true, domain = true,
                    external = true, identity = true, licensed = true }
-- Properties the model derives or keys its indexes on: set through the helpers or create.
local READ_ONLY = { Guid = true, ExternalDirectoryObjectId = true, RecipientType = true,
                    created = true, MailboxLocations = true }

-- The changes `props` asks for on recipient r: helpers expanded, sizes parsed.
local function changes(sim, t, r, props)
  local ch = {}
  local c = { sim = sim, t = t, r = r, ch = ch }
  -- helpers after plain properties, in a fixed order (archive before aux_archives)
  for k, v in pairs(props) do
    if not HELPERS[k] and not SPEC_ONLY[k] then
      if READ_ONLY[k] then bad("%s is derived by the simulator; it cannot be set", k) end
      if type(k) ~= "string" or not k:match("^[%u_]") then
        bad("unknown key '%s' (EXO property names start upper-case; helpers: %s)", tostring(k),
            "archive, aux_archives, licenses, full_access, send_as, send_on_behalf, org_hold, " ..
            "substrate_hold_items, previous_mailbox, demoted_archive, dirsynced, add_addresses, " ..
            "remove_addresses, copy_guids_from")
      end
      ch[k] = SIZES[k] and M.bytes(v, k) or v
    end
  end
  for _, k in ipairs { "archive", "aux_archives", "licenses", "full_access", "send_as",
                       "send_on_behalf", "org_hold", "substrate_hold_items", "previous_mailbox",
                       "demoted_archive", "dirsynced", "add_addresses", "remove_addresses",
                       "copy_guids_from" } do
    if props[k] ~= nil then HELPERS[k](c, props[k]) end
  end
  return ch
end

-- Keep MailboxLocations and the Entra user in step with the recipient.
local function settle(t, r)
  if M.KINDS[r.RecipientTypeDetails] == "mailbox" then
    local locs, suffix = locations(t, r)
    if r.ArchiveGuid and r.ArchiveGuid ~= ZERO then
      locs[#locs + 1] = "1;" .. r.ArchiveGuid .. ";MainArchive" .. suffix
      for k = 1, r.AuxArchiveCount or 0 do
        -- a stable GUID per aux archive, derived from the archive GUID
        locs[#locs + 1] = fmt("1;%s%04x;AuxArchive%s", r.ArchiveGuid:sub(1, 32), k, suffix)
      end
    end
    r.MailboxLocations = locs
  end
  local u = t.dir.objects[r.ExternalDirectoryObjectId or ""]
  if u then
    u.mail = r.PrimarySmtpAddress
    u.proxyAddresses = { table.unpack(r.EmailAddresses or {}) }
    u.displayName = r.DisplayName or u.displayName
  end
end

-- update(sim, t, r, props) -> r: properties and helpers applied (the identity index kept).
function M.update(sim, t, r, props)
  local ch = changes(sim, t, r, props)
  if ch.PrimarySmtpAddress then
    local addrs = {}
    for _, a in ipairs(ch.EmailAddresses or r.EmailAddresses or {}) do
      addrs[#addrs + 1] = a:match("^SMTP:") and ("smtp:" .. a:sub(6)) or a
    end
    local have
    for i, a in ipairs(addrs) do
      if lower(a) == "smtp:" .. lower(ch.PrimarySmtpAddress) then addrs[i] = "SMTP:" .. a:sub(6); have = true end
    end
    if not have then table.insert(addrs, 1, "SMTP:" .. ch.PrimarySmtpAddress) end
    ch.EmailAddresses = addrs
  end
  model.update_recipient(t, r, ch)
  if ch.UserPrincipalName then
    local u = t.dir.objects[r.ExternalDirectoryObjectId or ""]
    if u then u.userPrincipalName = ch.UserPrincipalName; model.reindex(t) end
  end
  settle(t, r)
  return r
end

---------------------------------------------------------------------------------------------
-- Create.

local function unique_alias(t, base)
  local alias, n = base, 1
  while model.find_recipient(t, alias) do
    n = n + 1
    alias = base .. n
  end
  return alias
end

local function ascii_alias(s)
  local a = lower(s or ""):gsub("[^%w%.%-_']", "")
  return a ~= "" and a or "user"
end

local function default_domain(t)
  for _, d in ipairs(t.domains) do if d.isDefault then return d.id end end
  return t.initial_domain
end

-- What each kind of recipient has beyond the common properties.
local INIT = {}

function INIT.mailbox(sim, t, r, spec)
  r.RecipientType = "UserMailbox"
  r.ExchangeGuid, r.ArchiveGuid, r.ArchiveStatus = guid(sim), ZERO, "None"
  r.UserPrincipalName = spec.upn or r.PrimarySmtpAddress
  r.EmailAddresses = { "SMTP:" .. r.PrimarySmtpAddress, "smtp:" .. r.Alias .. "@" .. t.initial_domain,
                       "smtp:" .. r.Alias .. "@" .. t.name .. ".mail.onmicrosoft.com" }
  r.Database = t.exo.databases and t.exo.databases[1] or nil
  r.TotalItemSize, r.ItemCount, r.TotalDeletedItemSize = 100 * 1048576, 1500, 1048576
  r.InPlaceHolds, r.PersistedCapabilities = {}, {}
end

function INIT.mailuser(_, t, r, spec, ext)
  r.RecipientType = "MailUser"
  r.ExchangeGuid, r.ArchiveGuid, r.ArchiveStatus = ZERO, ZERO, "None"
  r.UserPrincipalName = spec.upn or (r.Alias .. "@" .. t.initial_domain)
  r.ExternalEmailAddress = "SMTP:" .. (ext or (r.Alias .. "@example.net"))
  r.EmailAddresses = { "SMTP:" .. r.PrimarySmtpAddress }
  if lower(r.PrimarySmtpAddress) ~= lower(r.Alias .. "@" .. t.initial_domain) then
    r.EmailAddresses[2] = "smtp:" .. r.Alias .. "@" .. t.initial_domain
  end
  r.RecoverableItemsQuota, r.InPlaceHolds, r.PersistedCapabilities = 30 * GB, {}, {}
end

function INIT.contact(_, _, r, spec, ext)
  r.RecipientType = "MailContact"
  if not ext then bad("a MailContact needs external (its ExternalEmailAddress)") end
  r.ExternalEmailAddress = "SMTP:" .. ext
  r.PrimarySmtpAddress = spec.primary or ext
  r.EmailAddresses = { "SMTP:" .. r.PrimarySmtpAddress }
end

-- The display name, alias and primary address a spec asks for (free ones, or refused).
local function naming(t, spec)
  local display = spec.display_name or spec.DisplayName or spec.name or spec.alias or
                  (spec.first and spec.last and (spec.first .. " " .. spec.last)) or "New User"
  if spec.alias and model.find_recipient(t, spec.alias) then
    bad("alias '%s' is already used in %s", spec.alias, t.name)
  end
  local alias = spec.alias or unique_alias(t, (spec.primary and spec.primary:match("^([^@]+)")) or ascii_alias(display))
  local primary = spec.primary or (alias .. "@" .. (spec.domain or default_domain(t)))
  if model.find_recipient(t, primary) then bad("address '%s' is already used in %s", primary, t.name) end
  return display, alias, primary
end

-- create(sim, t, spec) -> r.  spec.kind (default UserMailbox); alias/name/display_name/first/
-- last/primary/upn/domain/external (a mail user's or contact's ExternalEmailAddress); then any
-- EXO property and the helpers (see changes()).  Mailboxes are licensed E3 unless
-- spec.licenses says otherwise (licensed = false: none).
function M.create(sim, t, spec)
  local kind = spec.kind or "UserMailbox"
  local class = M.KINDS[kind]
  if not class then
    bad("kind '%s': one of UserMailbox, SharedMailbox, RoomMailbox, EquipmentMailbox, MailUser, " ..
        "MailContact", tostring(kind))
  end
  local display, alias, primary = naming(t, spec)
  local name = spec.name or alias
  local r = {
    Guid = guid(sim), ExternalDirectoryObjectId = guid(sim), Name = name, Alias = alias,
    DisplayName = display, FirstName = spec.first, LastName = spec.last,
    PrimarySmtpAddress = primary, RecipientTypeDetails = kind, IsDirSynced = false,
    LegacyExchangeDN = M.LEGDN .. hex32(sim) .. "-" .. alias,
    DistinguishedName = "CN=" .. name .. ",OU=" .. t.initial_domain ..
      ",OU=Microsoft Exchange Hosted Organizations,DC=EURPR01A001,DC=PROD,DC=OUTLOOK,DC=COM",
    created = sim:now(),
  }
  INIT[class](sim, t, r, spec, spec.external and (spec.external:gsub("^%a+:", "")))
  for i = 1, #r.EmailAddresses do
    local other = model.find_recipient(t, (r.EmailAddresses[i]:gsub("^%a+:", "")))
    if other then bad("address '%s' is already used by '%s'", r.EmailAddresses[i], other.Name) end
  end
  if class ~= "contact" then
    model.add_object(sim.state, t, {
      ["@odata.type"] = "#microsoft.graph.user", id = r.ExternalDirectoryObjectId,
      userPrincipalName = r.UserPrincipalName, displayName = display, givenName = spec.first,
      surname = spec.last, mail = primary, mailNickname = alias,
      proxyAddresses = { table.unpack(r.EmailAddresses) }, accountEnabled = kind == "UserMailbox",
      userType = "Member", usageLocation = class == "mailbox" and "US" or nil,
      assignedLicenses = {}, created = r.created,
    })
  end
  model.add_recipient(t, r)
  local props = {}
  for k, v in pairs(spec) do props[k] = v end
  if kind == "UserMailbox" and props.licenses == nil and spec.licensed ~= false then props.licenses = { "e3" } end
  return M.update(sim, t, r, props)
end

-- remove(sim, t, r): the recipient and its directory user.
function M.remove(sim, t, r)
  model.remove_recipient(t, r.Guid)
  if r.ExternalDirectoryObjectId and t.dir.objects[r.ExternalDirectoryObjectId] then
    model.remove_object(sim.state, t, r.ExternalDirectoryObjectId)
  end
end

---------------------------------------------------------------------------------------------
-- Control API: /_sim/recipients and /_sim/scenario (docs/simulator.md).

local function tenant_of(sim, key)
  local t = model.tenant(sim.state, key)
  if not t then bad("no tenant '%s' (contoso, fabrikam, a tenant id or a domain)", tostring(key)) end
  return t
end

local function find(t, identity)
  local r, why = model.find_recipient(t, identity)
  if not r then bad("no recipient '%s' in %s (%s)", tostring(identity), t.name, why or "notfound") end
  return r
end

-- One scenario step: {create = spec} | {update = {tenant, identity, set = {...}}} |
-- {delete = {tenant, identity}} -> the recipient (or true).
function M.step(sim, s)
  if s.create then
    return M.create(sim, tenant_of(sim, s.create.tenant), s.create)
  elseif s.update then
    local t = tenant_of(sim, s.update.tenant)
    return M.update(sim, t, find(t, s.update.identity), s.update.set or {})
  elseif s.delete then
    local t = tenant_of(sim, s.delete.tenant)
    M.remove(sim, t, find(t, s.delete.identity))
    return true
  end
  bad("a scenario step is {create = ...}, {update = ...} or {delete = ...}")
end

-- apply(sim, scenario) -> results | nil, message: every step in order; the first bad step
-- stops (steps before it stay applied) and is named by its index.
function M.apply(sim, scenario)
  local steps = type(scenario) == "table" and (scenario.steps or scenario) or nil
  if type(steps) ~= "table" then return nil, "a scenario is {steps = [...]} or a list of steps" end
  local out = {}
  for i, s in ipairs(steps) do
    local ok, r = pcall(M.step, sim, s)
    if not ok then
      local msg = type(r) == "table" and r.message or tostring(r)
      return nil, fmt("step %d: %s", i, msg), out
    end
    out[i] = type(r) == "table" and r.Guid or r
  end
  return out
end

local function json(status, body) return { status = status, body = body } end

-- control(sim, req, rest): /_sim/recipients[/TENANT/IDENTITY] and /_sim/scenario.
function M.control(sim, req, rest)
  local b = type(req.json) == "table" and req.json or {}
  local function run(fn)
    local ok, r = pcall(fn)
    if ok then return r end
    if type(r) == "table" and r.population then
      return json(400, { error = { code = "BadRequest", message = r.message } })
    end
    error(r, 0)
  end
  if rest == "scenario" then
    if req.method ~= "POST" then return json(405, { error = { code = "MethodNotAllowed", message = "POST" } }) end
    local res, err, done = M.apply(sim, b)
    if not res then return json(400, { error = { code = "BadRequest", message = err }, applied = done }) end
    return json(200, { applied = #res, value = res })
  end
  local tkey, ident = rest:match("^recipients/([^/]+)/(.+)$")
  if tkey then ident = ident:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end) end
  return run(function()
    if rest == "recipients" and req.method == "POST" then
      return json(201, M.create(sim, tenant_of(sim, b.tenant), b))
    elseif tkey and req.method == "GET" then
      return json(200, find(tenant_of(sim, tkey), ident))
    elseif tkey and req.method == "PATCH" then
      local t = tenant_of(sim, tkey)
      return json(200, M.update(sim, t, find(t, ident), b))
    elseif tkey and req.method == "DELETE" then
      local t = tenant_of(sim, tkey)
      M.remove(sim, t, find(t, ident))
      return { status = 204 }
    end
    return json(404, { error = { code = "NotFound", message = "POST /_sim/recipients, GET|PATCH|DELETE " ..
      "/_sim/recipients/TENANT/IDENTITY, POST /_sim/scenario" } })
  end)
end

return M
