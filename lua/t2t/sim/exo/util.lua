-- t2t.sim.exo.util: what every simulated Exchange cmdlet shares — errors in the service's
-- shape, -Identity resolution over the recipients (model.find_recipient, replication lag),
-- OPATH -Filter, and the property bags the service returns (annotations, display sizes).
local cjson = require "cjson"
local model = require "t2t.sim.model"
local exo = require "t2t.exo"
local index = require "t2t.sim.index"

local M = {}

local lower, fmt = string.lower, string.format

-- Full exception type names.  ManagementObjectNotFoundException is from wire.md §2.7 (S16);
-- the namespaces of the others are [inferred] (Exchange's usual ones).
M.EX = {
  NotFound = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
  Ambiguous = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException",
  AlreadyExists = "Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException",
  ProxyExists = "Microsoft.Exchange.Data.Directory.ProxyAddressExistsException",
  Validation = "Microsoft.Exchange.Data.DataValidationException",
  Task = "Microsoft.Exchange.Configuration.Tasks.TaskException",
  InvalidOperation = "System.InvalidOperationException",
  Argument = "System.ArgumentException",
  Dehydrated = "Microsoft.Exchange.Management.Tasks.InvalidOperationInDehydratedContextException",
  NotAcceptedDomain = "Microsoft.Exchange.Migration.NotAcceptedDomainException",
  Migration = "Microsoft.Exchange.Migration.MigrationPermanentException",
  MigrationTransient = "Microsoft.Exchange.Migration.MigrationTransientException",
}

-- A stable "ExXXXXXX" error id per exception type (the service's ids look like Ex6F9304).
local function ex_id(typ)
  local h = 5381
  for i = 1, #typ do h = (h * 33 + typ:byte(i)) & 0xFFFFFF end
  return fmt("Ex%06X", h)
end
M.ex_id = ex_id

local ErrMT = { __tostring = function(e) return e.exception .. ": " .. e.text end }

-- fail(status, exception type, text): abort the cmdlet with the service's error response.
function M.fail(status, typ, text, ...)
  if select("#", ...) > 0 then text = fmt(text, ...) end
  error(setmetatable({ exo_fail = true, status = status, exception = typ, text = text }, ErrMT), 0)
end

local STATUS_CODE = { [400] = "BadRequest", [404] = "NotFound", [403] = "Forbidden",
                      [500] = "InternalServerError", [501] = "NotImplemented" }

-- The JSON error body (wire.md §2.7 shape; keys as Exchange's own tests spell them).
function M.error_body(status, typ, text)
  local msg = ex_id(typ) .. "|" .. typ .. "|" .. text
  return exo.json_encode { error = {
    code = STATUS_CODE[status] or "InternalServerError", message = "Error executing cmdlet",
    details = { { code = "Client", target = "", message = msg } },
    innererror = { message = "Error executing cmdlet",
                   type = "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                   stacktrace = "", internalexception = { message = text, type = typ,
                                                          stacktrace = "" } } } }
end

-- The server name in "couldn't be found on '...'" messages, fixed per tenant.
function M.server_name(t)
  local h = 0
  for i = 1, #t.id do h = (h * 31 + t.id:byte(i)) % 900 end
  return fmt("SIM%03dA%03d.NAMPRD01.PROD.OUTLOOK.COM", 100 + h // 10, h)
end

-- only_simulated(cmdlet, p, known): raises a 501 naming every parameter of p (bound, so valid
-- in EXO) that is not in the set `known`: a parameter the simulator does not model is refused
-- rather than ignored, as the Graph simulator does for $expand.
function M.only_simulated(cmdlet, p, known)
  local bad = {}
  for k in pairs(p) do if not known[k] then bad[#bad + 1] = "-" .. k end end
  if #bad == 0 then return end
  table.sort(bad)
  M.fail(501, "System.NotImplementedException", "The simulator does not implement %s %s " ..
    "(valid in Exchange Online, not modelled here).", cmdlet, table.concat(bad, " "))
end

function M.not_found(ctx, identity)
  M.fail(404, M.EX.NotFound,
    "The operation couldn't be performed because object '%s' couldn't be found on '%s'.",
    tostring(identity), M.server_name(ctx.t))
end

local function visible(ctx, obj)
  local sim = ctx.sim
  if sim.visible then return sim:visible(obj) end
  return true
end
M.visible = visible

-- find(ctx, identity, kinds) -> recipient: resolves -Identity like EXO among recipients whose
-- RecipientTypeDetails is in kinds (a set; nil = any), honouring replication lag.  Raises the
-- service's 404 / ambiguity errors.
function M.find(ctx, identity, kinds, quiet)
  if type(identity) == "table" then identity = identity[1] end
  local r, why, list = model.find_recipient(ctx.t, identity)
  local hits = {}
  if r then list = { r } end
  if not list and type(identity) == "string" then
    -- DisplayName is not in the model's identity index: scan (only on a miss).
    local id = lower(identity)
    list = {}
    for _, x in pairs(ctx.t.exo.recipients) do
      if x.DisplayName and lower(x.DisplayName) == id then list[#list + 1] = x end
    end
  end
  for _, x in ipairs(list or {}) do
    if (not kinds or kinds[x.RecipientTypeDetails]) and visible(ctx, x) then hits[#hits + 1] = x end
  end
  if #hits == 1 then return hits[1] end
  if quiet then return nil end
  if #hits == 0 then M.not_found(ctx, identity) end
  M.fail(400, M.EX.Ambiguous,
    "The operation couldn't be performed because '%s' matches multiple entries.", tostring(identity))
  return nil, why
end

-- listing(ctx, kinds, keep) -> a lazy listing for t2t.sim.exo's pager: the visible recipients
-- of kinds (a set; nil = any) for which keep(r) holds (nil: all), in Get-Mailbox order (by
-- name, then Guid: t2t.sim.index).  listing.seek(after_key, n, sure) -> up to n recipients
-- after the key, the last one's key, and whether more follow: a page costs O(log n + scanned),
-- never a sort of the tenant.  "More" looks ahead another n keys (an empty next page is then
-- possible, as in Exchange); sure = true looks to the end.
function M.listing(ctx, kinds, keep)
  local t = ctx.t
  local function ok(r)
    return r and (not kinds or kinds[r.RecipientTypeDetails]) and visible(ctx, r)
      and (not keep or keep(r))
  end
  return { lazy = true, seek = function(after, n, sure)
    local keys, recips = index.recipients(t), t.exo.recipients
    local total = #keys
    local i = index.upper(keys, after)
    local out, last = {}, nil
    while i <= total and #out < n do
      local r = recips[index.key_guid(keys[i])]
      if ok(r) then out[#out + 1] = r; last = keys[i] end
      i = i + 1
    end
    local limit = sure and total or math.min(total, i + n)
    for j = i, limit do
      if ok(recips[index.key_guid(keys[j])]) then return out, last, true end
    end
    return out, last, limit < total
  end }
end

-- All visible recipients whose RecipientTypeDetails is in kinds (nil = any).
function M.all(ctx, kinds)
  local out = {}
  for _, r in pairs(ctx.t.exo.recipients) do
    if (not kinds or kinds[r.RecipientTypeDetails]) and visible(ctx, r) then out[#out + 1] = r end
  end
  return out
end

function M.set(...)
  local s = {}
  for _, v in ipairs({ ... }) do s[v] = true end
  return s
end

M.MAILBOX = M.set("UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox",
                  "SchedulingMailbox", "DiscoveryMailbox", "TeamMailbox", "LegacyMailbox",
                  "LinkedMailbox", "LinkedRoomMailbox", "GroupMailbox")
M.MAILUSER = M.set("MailUser", "GuestMailUser")
M.USER = M.set("UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox", "MailUser",
               "GuestMailUser", "User", "DisabledUser")
M.GROUP = M.set("MailUniversalDistributionGroup", "MailUniversalSecurityGroup",
                "MailNonUniversalGroup", "RoomList")

---------------------------------------------------------------------------------------------
-- OPATH -Filter: Prop -eq|-ne|-like|-notlike 'value' (or $true/$false/$null), joined by -and /
-- -or (left to right, -and binds tighter), optional parentheses around the whole filter.

local function filter_pred(prop, op, val)
  local pat
  if op == "-like" or op == "-notlike" then
    pat = "^" .. lower(val):gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*") .. "$"
  end
  return function(r)
    local v = r[prop]
    local vals = type(v) == "table" and v or { v }
    local any = false
    for _, x in ipairs(vals) do
      local s = x == nil and "" or lower(tostring(x))
      if op == "-eq" or op == "-ne" then
        if val == cjson.null then any = any or x == nil
        else any = any or s == lower(tostring(val)) end
      else
        any = any or s:find(pat) ~= nil
      end
    end
    if #vals == 0 and op == "-eq" and val == cjson.null then any = true end
    if op == "-ne" or op == "-notlike" then return not any end
    return any
  end
end

-- compile_filter(text) -> predicate(recipient) or raises 400.
function M.compile_filter(text)
  local s = text:gsub("^%s*%((.*)%)%s*$", "%1")
  local ors = {}
  for clause in (s .. " -or "):gmatch("(.-)%s+%-or%s+") do
    local ands = {}
    for term in (clause .. " -and "):gmatch("(.-)%s+%-and%s+") do
      term = term:gsub("^%s*%(?%s*", ""):gsub("%s*%)?%s*$", "")
      local prop, op, rest = term:match("^([%w_%.]+)%s+(%-%a+)%s+(.+)$")
      op = op and lower(op)
      if not prop or not (op == "-eq" or op == "-ne" or op == "-like" or op == "-notlike") then
        M.fail(400, M.EX.Argument, "Invalid filter syntax. For a description of the filter " ..
          "parameter syntax see the command help. \"%s\" at position 1.", text)
      end
      local val = rest:match("^'(.*)'$")
      if val then val = val:gsub("''", "'") else val = rest:match('^"(.*)"$') end   -- 'd''arcy
      if not val then
        local l = lower(rest)
        val = l == "$true" and "true" or l == "$false" and "false" or l == "$null" and cjson.null
              or rest
      end
      ands[#ands + 1] = filter_pred(prop, op, val)
    end
    ors[#ors + 1] = ands
  end
  return function(r)
    for _, ands in ipairs(ors) do
      local ok = true
      for _, p in ipairs(ands) do if not p(r) then ok = false; break end end
      if ok then return true end
    end
    return false
  end
end

-- Ambiguous name resolution: prefix of Name, Alias, DisplayName, first/last name or an address.
local ANR = { "Name", "Alias", "DisplayName", "FirstName", "LastName", "PrimarySmtpAddress" }
function M.anr_match(r, text)
  local q = lower(text)
  for _, k in ipairs(ANR) do
    local v = r[k]
    if type(v) == "string" and lower(v):sub(1, #q) == q then return true end
  end
  return false
end

function M.anr(list, text)
  local out = {}
  for _, r in ipairs(list) do if M.anr_match(r, text) then out[#out + 1] = r end end
  return out
end

---------------------------------------------------------------------------------------------
-- Presentation.

local function commas(n)
  local s = tostring(math.floor(n))
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end

-- "1.5 GB (1,610,612,736 bytes)", as the service prints a ByteQuantifiedSize.
function M.size(bytes)
  if type(bytes) ~= "number" then return bytes end
  local units = { { 1 << 40, "TB" }, { 1 << 30, "GB" }, { 1 << 20, "MB" }, { 1 << 10, "KB" } }
  for _, u in ipairs(units) do
    if bytes >= u[1] then
      local v = bytes / u[1]
      local s = fmt("%.3f", v):gsub("0+$", ""):gsub("%.$", "")
      return fmt("%s %s (%s bytes)", s, u[2], commas(bytes))
    end
  end
  return fmt("%d B (%s bytes)", bytes, commas(bytes))
end

function M.time(epoch)
  if type(epoch) ~= "number" then return epoch end
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(epoch)) .. ".0000000+00:00"
end

local HIDDEN = { created = true, AuxArchiveCount = true }
local SIZE_KEY = { TotalItemSize = true, TotalDeletedItemSize = true, RecoverableItemsQuota = true,
                   ProhibitSendReceiveQuota = true, ProhibitSendQuota = true, IssueWarningQuota = true,
                   ArchiveQuota = true, ArchiveWarningQuota = true }
local EMPTY = exo.EMPTY_ARRAY_SENTINEL

-- present(obj, extra) -> a new property bag: sim-only keys dropped, sizes as display strings,
-- arrays and GUIDs annotated like the service (wire.md §2.5); extra keys merged on top.
function M.present(obj, extra)
  local out = {}
  local function put(k, v)
    if HIDDEN[k] or type(k) ~= "string" or k:sub(1, 1) == "_" then return end
    if SIZE_KEY[k] then v = M.size(v) end
    if type(v) == "table" then
      if next(v) == nil then v = EMPTY end
      out[k .. "@odata.type"] = "#Collection(String)"
    elseif type(v) == "string" and (k:sub(-4) == "Guid" or k == "ExternalDirectoryObjectId")
           and #v == 36 then
      out[k .. "@data.type"] = "System.Guid"
      out[k .. "@odata.type"] = "#Guid"
    end
    out[k] = v
  end
  for k, v in pairs(obj) do put(k, v) end
  if obj.created and out.WhenCreated == nil then
    out.WhenCreated = M.time(obj.created)
    out["WhenCreated@data.type"] = "System.DateTime"
  end
  for k, v in pairs(extra or {}) do put(k, v) end
  return out
end

-- Keep only the properties named in $select (plus nothing else).
function M.select(obj, sel)
  if not sel then return obj end
  local out = {}
  for _, k in ipairs(sel) do
    out[k] = obj[k]
    for _, suf in ipairs { "@odata.type", "@data.type" } do out[k .. suf] = obj[k .. suf] end
  end
  return out
end

-- An array value from a parameter (a scalar becomes a one-element list).
function M.list(v)
  if v == nil then return {} end
  if type(v) == "table" then
    local out = {}
    for i, x in ipairs(v) do out[i] = x end
    return out
  end
  return { v }
end

function M.copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = type(v) == "table" and M.copy(v) or v end
  return out
end

-- A Set-* multi-valued parameter: a list replaces; a hashtable {add=, remove=} edits.
function M.edit_list(cur, v)
  if type(v) == "table" and not exo.is_array(v) then
    local out = M.copy(cur or {})
    local function has(x)
      for i, y in ipairs(out) do if lower(y) == lower(x) then return i end end
    end
    for k, vals in pairs(v) do
      local key = lower(k)
      for _, x in ipairs(M.list(vals)) do
        if key == "add" then
          if not has(x) then out[#out + 1] = x end
        elseif key == "remove" then
          local i = has(x)
          if i then table.remove(out, i) end
        elseif k:sub(1, 1) ~= "@" then
          M.fail(400, M.EX.Argument, "Unknown hashtable key '%s': use Add or Remove.", k)
        end
      end
    end
    return out
  end
  return M.list(v)
end

-- Is addr's domain one of the tenant's accepted domains?
function M.accepted(ctx, addr)
  local dom = lower(addr:match("@(.+)$") or "")
  for _, d in ipairs(ctx.t.exo.accepted_domains) do
    if lower(d.DomainName) == dom then return true end
  end
  return false
end

return M
