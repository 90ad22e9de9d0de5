-- t2t.mailuser.export: read the source mailboxes — every attribute the preparation and the
-- CSS-val rules read (ms-setup-and-prep.md §3.2, §5): GUIDs, LegacyExchangeDN, every proxy, UPN,
-- holds of every kind CSS-val detects (the organization-wide one through HoldTracking), aux
-- archives, dumpster size, SubstrateHolds items, scope-group membership, licence capabilities and
-- FullAccess / SendAs / Send on Behalf delegates.  Listings are paged (Get-Mailbox with
-- $select, objects handled as each page arrives); per-user reads run concurrently.
local cjson = require "cjson"
local t2t = require "t2t"
local C = require "t2t.mailuser.common"

local M = {}
local lower, fmt = string.lower, string.format

-- What Get-Mailbox must return for a record ($select keeps pages small).
M.SELECT = { "Name", "Alias", "DisplayName", "UserPrincipalName", "PrimarySmtpAddress",
  "RecipientTypeDetails", "ExchangeGuid", "ArchiveGuid", "LegacyExchangeDN", "EmailAddresses",
  "IsDirSynced", "LitigationHoldEnabled", "DelayHoldApplied", "DelayReleaseHoldApplied",
  "ComplianceTagHoldApplied", "InPlaceHolds", "MailboxLocations", "PersistedCapabilities",
  "GrantSendOnBehalfTo", "DisabledArchiveGuid", "UsageLocation", "ExternalDirectoryObjectId" }

local function aux_count(locs)
  local n = 0
  for _, l in ipairs(C.list(locs)) do
    if lower(l):find("auxarchive", 1, true) then n = n + 1 end
  end
  return n
end

local function nonempty(v) return #C.list(v) > 0 and C.list(v) or nil end
local function yes(v) return v == true or nil end

-- record(mailbox object) -> the compact record every other part reads: only what is set is
-- kept (false flags, zero GUIDs and empty lists are absent), so 100k users stay small.
function M.record(m)
  for k, v in pairs(m) do                  -- an unset property may come as null: it is absent
    if v == cjson.null then m[k] = nil end
  end
  local aux = aux_count(m.MailboxLocations)
  return {
    Name = m.Name, Alias = m.Alias, DisplayName = m.DisplayName, UserPrincipalName = m.UserPrincipalName,
    PrimarySmtpAddress = m.PrimarySmtpAddress, RecipientTypeDetails = m.RecipientTypeDetails,
    ExchangeGuid = m.ExchangeGuid, ArchiveGuid = not C.is_zero(m.ArchiveGuid) and m.ArchiveGuid or nil,
    LegacyExchangeDN = m.LegacyExchangeDN, EmailAddresses = C.list(m.EmailAddresses),
    IsDirSynced = yes(m.IsDirSynced), UsageLocation = m.UsageLocation,
    LitigationHoldEnabled = yes(m.LitigationHoldEnabled), DelayHoldApplied = yes(m.DelayHoldApplied),
    DelayReleaseHoldApplied = yes(m.DelayReleaseHoldApplied), ComplianceTagHoldApplied = yes(m.ComplianceTagHoldApplied),
    InPlaceHolds = nonempty(m.InPlaceHolds), AuxArchiveCount = aux > 0 and aux or nil,
    PersistedCapabilities = nonempty(m.PersistedCapabilities), SendOnBehalf = nonempty(m.GrantSendOnBehalfTo),
    DisabledArchiveGuid = not C.is_zero(m.DisabledArchiveGuid) and m.DisabledArchiveGuid or nil,
    ExternalDirectoryObjectId = m.ExternalDirectoryObjectId,
  }
end

---------------------------------------------------------------------------------------------
-- The scope group (CSS-val: the org relationship with RemoteOutbound and an OAuthApplicationId,
-- its MailboxMovePublishedScopes[0]) and its members.

-- scope(source [, name]) -> {name, members = {lower key = true}} | nil, why (none configured)
-- | nil, err.
function M.scope(source, name)
  if not name then
    local rels, err = source:org_relationships("", {})
    if not rels then return nil, err end
    for _, r in ipairs(rels.all) do
      local caps = source.caps_of(r.MailboxMoveCapability)
      local outbound = false
      for _, c in ipairs(caps) do if lower(c) == "remoteoutbound" then outbound = true end end
      if outbound and r.OAuthApplicationId and r.OAuthApplicationId ~= "" then
        name = C.list(r.MailboxMovePublishedScopes)[1]
        break
      end
    end
    if not name then
      return nil, "the source has no organization relationship with RemoteOutbound and an " ..
                  "OAuthApplicationId publishing a scope group (run setup-source)"
    end
  end
  local members = {}
  local list, err = source:xo("Get-DistributionGroupMember", { Identity = name, ResultSize = "Unlimited" })
  if not list then
    if C.not_found(err) then return nil, fmt("the scope group '%s' does not exist", name) end
    return nil, err
  end
  for _, m in ipairs(list) do
    for _, k in ipairs { m.Name, m.PrimarySmtpAddress } do
      if k then members[lower(k)] = true end
    end
  end
  local g = C.get_one(source, "Get-DistributionGroup", { Identity = name })
  return { name = g and (g.Name or g.Identity) or name, identity = name, members = members, count = #list }
end

function M.in_scope(scope, u)
  local s = scope.members
  return (u.Name and s[lower(u.Name)]) or (u.PrimarySmtpAddress and s[lower(u.PrimarySmtpAddress)]) or false
end

---------------------------------------------------------------------------------------------
-- The per-user reads of a full export.

local function holdtracking(log)
  local ids = {}
  if type(log) ~= "string" or log == "" then return ids end
  local ok, doc = pcall(require("cjson").decode, log)
  if ok and type(doc) == "table" then
    for _, e in ipairs(doc[1] and doc or { doc }) do
      if type(e) == "table" and tostring(e.hid or ""):match("^mbx") and tonumber(e.ht) == 4 then
        ids[#ids + 1] = e.hid
      end
    end
  else                                  -- not JSON: CSS-val's own test, '*"hid":"mbx*","ht":4*'
    for hid in log:gmatch('"hid":"(mbx[^"]*)","ht":4') do ids[#ids + 1] = hid end
  end
  return ids
end
M.holdtracking = holdtracking

-- principals(list of permission entries, field) -> the delegates, SELF and inherited ones left out.
local function principals(list, field)
  local out = {}
  for _, e in ipairs(list or {}) do
    local who = e[field]
    if who and not tostring(who):find("^NT AUTHORITY\\") and e.IsInherited ~= true and e.Deny ~= true then
      out[#out + 1] = who
    end
  end
  return #out > 0 and out or nil
end

-- details(source, u) -> true | nil, err: the full-depth attributes onto record u.
function M.details(source, u)
  local id = u.ExchangeGuid or u.PrimarySmtpAddress
  local st, err = C.get_one(source, "Get-MailboxStatistics", { Identity = id })
  if err then return nil, err end
  u.TotalDeletedItemSize = st and C.bytes(st.TotalDeletedItemSize) or 0
  local diag
  diag, err = C.get_one(source, "Export-MailboxDiagnosticLogs", { Identity = id, ComponentName = "HoldTracking" })
  if err then return nil, err end
  local org = holdtracking(diag and diag.MailboxLog)
  u.OrgHolds = #org > 0 and org or nil
  if u.ArchiveGuid then
    local folders
    folders, err = source:xo("Get-MailboxFolderStatistics", { Identity = id, Archive = true,
                                                              FolderScope = "RecoverableItems" })
    if not folders then return nil, err end
    for _, f in ipairs(folders) do
      if f.Name == "SubstrateHolds" then u.SubstrateHoldsItems = tonumber(f.ItemsInFolder) or 0 end
    end
  end
  local perms
  perms, err = source:xo("Get-MailboxPermission", { Identity = id })
  if not perms then return nil, err end
  u.FullAccess = principals(perms, "User")
  perms, err = source:xo("Get-RecipientPermission", { Identity = id, AccessRights = "SendAs" })
  if not perms then return nil, err end
  u.SendAs = principals(perms, "Trustee")
  -- calendar delegates (Editor with the delegate flag): they move only with their principal (§5.6)
  perms, err = source:xo("Get-MailboxFolderPermission", { Identity = (u.PrimarySmtpAddress or id) .. ":\\Calendar" })
  if perms then
    local cal = {}
    for _, e in ipairs(perms) do
      if tostring(e.SharingPermissionFlags or ""):find("Delegate", 1, true) and e.User then cal[#cal + 1] = e.User end
    end
    u.CalendarDelegates = #cal > 0 and cal or nil
  elseif not C.not_found(err) then
    return nil, err
  end
  u.depth = "full"
  return true
end

---------------------------------------------------------------------------------------------
-- Selection.

local function by_identity(source, ident)
  return C.get_one(source, "Get-Mailbox", { Identity = ident }, { select = M.SELECT })
end

M.WINDOW = 500          -- users read in detail at once, then handed on (memory stays flat)

-- The mailbox identities a group names (its mailbox members).
local function group_members(source, group)
  local list, err = source:xo("Get-DistributionGroupMember", { Identity = group, ResultSize = "Unlimited" })
  if not list then
    if C.not_found(err) then return nil, C.failure("NoGroup", "the group '%s' does not exist in %s", group, source.name) end
    return nil, err
  end
  local idents = {}
  for _, m in ipairs(list) do
    if m.RecipientTypeDetails == nil or m.RecipientTypeDetails:find("Mailbox$") then
      idents[#idents + 1] = { source = m.PrimarySmtpAddress or m.Name }
    end
  end
  return idents
end

-- collect(source, selector, opts) -> users, failures | nil, err.
-- selector: {entries = list entries (t2t.mailuser.list) | group = name | all = true}.
-- opts: depth ("identity" | "full"), concurrency, on_progress(done), scope (a scope() result, or
-- false to skip membership), also(u) (more per-user work, run with the detail reads), each(u)
-- (stream: every user is handed to it as soon as it is read in full, and none is kept; `users`
-- is then empty).  Users are read in windows of M.WINDOW.
function M.collect(source, selector, opts)
  opts = opts or {}
  local conc = opts.concurrency or 16
  local users, failures, window, done = {}, {}, {}, 0
  local emit = opts.each or function(u) users[#users + 1] = u end
  local function one(u)
    if opts.depth == "full" then
      local ok, err = M.details(source, u)
      if not ok then u.read_error = tostring(err) end
    end
    if opts.also then opts.also(u) end
  end
  local function flush()
    if #window > 0 and (opts.depth == "full" or opts.also) then
      local results = t2t.parallel(window, one, { concurrency = conc })
      for i, r in ipairs(results) do
        if not r.ok then window[i].read_error = tostring(r.err) end
      end
    end
    for _, u in ipairs(window) do emit(u) end
    done = done + #window
    if opts.on_progress and #window > 0 then opts.on_progress(done) end
    window = {}
  end
  local function keep(u, entry)
    if entry then u.TargetUser, u.Batch, u.line = entry.target, entry.batch, entry.line end
    if opts.scope then u.InScope = M.in_scope(opts.scope, u) and true or false end
    window[#window + 1] = u
    if #window >= M.WINDOW then flush() end
  end
  if selector.all then
    local ok, err = source:xo("Get-Mailbox", { ResultSize = "Unlimited", RecipientTypeDetails = selector.kinds or C.MOVABLE },
                              { select = M.SELECT, each = function(m) keep(M.record(m)) end })
    if not ok then return nil, err end
  else
    local idents = selector.entries
    if selector.group then
      local err
      idents, err = group_members(source, selector.group)
      if not idents then return nil, err end
    end
    M.read_each(source, idents, conc, keep, failures)
  end
  flush()
  return users, failures
end

-- read_each(source, idents, conc, keep(u, entry), failures): Get-Mailbox for each identity of
-- a list, a window at a time; the ones the source does not have go to failures (rule 1).
function M.read_each(source, idents, conc, keep, failures)
  for first = 1, #idents, M.WINDOW do
    local part = table.move(idents, first, math.min(first + M.WINDOW - 1, #idents), 1, {})
    local results = t2t.parallel(part, function(e) return { by_identity(source, e.source) } end, { concurrency = conc })
    for i, r in ipairs(results) do
      local e = part[i]
      local m, err = r.ok and r.value[1], r.ok and r.value[2] or r.err
      if m then
        keep(M.record(m), e)
      else
        failures[#failures + 1] = { entry = e, problem = err and C.problem("ReadFailed", tostring(err))
          or C.problem("SourceNotFound", fmt("%s wasn't found on the SOURCE tenant (%s)", e.source, source.name),
            "check the address in the list, or that the mailbox exists (Get-Mailbox)") }
      end
    end
  end
end

return M
