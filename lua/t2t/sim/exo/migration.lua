-- t2t.sim.exo.migration: migration batches, migration users and move requests, with a small
-- engine that advances on simulated time whenever a batch is read or acted on:
--   Created -> Syncing -> Synced -> Completing -> Completed (CompletedWithErrors, Stopped),
-- per-user Failed with the documented exception (ms-setup-and-prep.md §6-8).  Completion
-- converts the target MailUser to a mailbox and the source mailbox to a MailUser.
local model = require "t2t.sim.model"
local U = require "t2t.sim.exo.util"
local O = require "t2t.sim.exo.orgrel"

local M = {}
local lower = string.lower
local ZERO = model.ZERO_GUID
local CTUDM = "ExchangeT2TMbxMove"
M.SYNC_BASE, M.SYNC_RATE, M.COMPLETE_SECONDS = 5, 200 * 1048576, 5   -- seconds, bytes/s

local function batches(t) return t.exo.batches end
local function musers(t)
  t.exo.migration_users = t.exo.migration_users or {}
  return t.exo.migration_users
end

local function bytes_csv(v)
  if type(v) == "string" then return v end
  if type(v) == "table" then
    local d = v.Data or v.data
    if type(d) == "string" then return require("t2t.exo").base64_decode(d) end
    if type(d) == "table" then
      local c = {}
      for i, b in ipairs(d) do c[i] = string.char(math.tointeger(b) or 0) end
      return table.concat(c)
    end
  end
  U.fail(400, U.EX.Argument, "CSVData must be a byte array.")
end

-- Rows of the batch CSV: the EmailAddress column (ms-setup-and-prep.md §6.2).
local function csv_rows(text, allow_unknown)
  local lines = {}
  for l in (text .. "\n"):gmatch("([^\r\n]*)\r?\n") do
    if l:match("%S") then lines[#lines + 1] = l end
  end
  local head = {}
  for h in (lines[1] or ""):gmatch("[^,]+") do head[#head + 1] = lower((h:gsub('^%s*"?', ""):gsub('"?%s*$', ""))) end
  local col
  for i, h in ipairs(head) do
    if h == "emailaddress" then col = i elseif not allow_unknown then
      U.fail(400, U.EX.Migration, "The CSV file contains the unknown column '%s'. Use " ..
        "-AllowUnknownColumnsInCsv $true to ignore it.", h)
    end
  end
  if not col then U.fail(400, U.EX.Migration, "The CSV file is missing the required column 'EmailAddress'.") end
  local rows = {}
  for i = 2, #lines do
    local f, k = nil, 0
    for x in lines[i]:gmatch("[^,]+") do k = k + 1; if k == col then f = x end end
    if f then rows[#rows + 1] = (f:gsub('^%s*"?', ""):gsub('"?%s*$', "")) end
  end
  if #rows > 2000 then U.fail(400, U.EX.Migration, "A migration batch can contain at most 2,000 users.") end
  return rows
end

-- What on the source mailbox itself stops a move: nil or exception, text.  Holds are CSS-val's
-- list (ms-setup-and-prep.md §3.2 #4, §5.4); a disabled ("demoted") archive left behind is
-- UserAlreadyHasDemotedArchiveException (§8), fixed by Set-Mailbox -RemoveDisabledArchive.
local function source_blocked(sr)
  if sr.LitigationHoldEnabled or sr.DelayHoldApplied or sr.DelayReleaseHoldApplied or
     sr.ComplianceTagHoldApplied or #(sr.InPlaceHolds or {}) > 0 then
    return "MigrationPermanentException", string.format("The source mailbox '%s' is on hold " ..
      "(litigation hold enabled or in-place holds) and can't be migrated cross-tenant without " ..
      "being added to the exception list.", sr.Name)
  end
  if sr.DisabledArchiveGuid and sr.DisabledArchiveGuid ~= ZERO and
     (not sr.ArchiveGuid or sr.ArchiveGuid == ZERO) then
    return "UserAlreadyHasDemotedArchiveException", string.format("The source mailbox '%s' " ..
      "has a previously disabled archive '%s'. Remove it (Set-Mailbox -RemoveDisabledArchive) " ..
      "or enable the archive again, then resume.", sr.Name, sr.DisabledArchiveGuid)
  end
  if (sr.AuxArchiveCount or 0) > 12 then
    return "MigrationPermanentException", string.format("The source mailbox '%s' has more than 12 " ..
      "auxiliary archives.", sr.Name)
  end
end

-- The readiness checks a cross-tenant move runs when it starts; nil or exception, text.
local function check(ctx, b, tr)
  local e = ctx.t.exo.migration_endpoints[b.SourceEndpoint]
  local src = e and model.tenant(ctx.state, e.RemoteTenant)
  if not src then return "MigrationPermanentException", "No valid migration endpoints for the remote tenant." end
  local sr, exn, text = O.check_user(ctx, src, e.ApplicationId, tr)
  if not sr then return exn, text end
  if not O.source_orgrel(src, ctx.t, e.ApplicationId) then
    return "MigrationPermanentException", "Tenant authorization error. The tenants are not configured to support migration."
  end
  local function has_cap(r)
    for _, c in ipairs(r.PersistedCapabilities or {}) do if lower(c) == lower(CTUDM) then return true end end
  end
  if sr.RecipientTypeDetails == "UserMailbox" and not has_cap(sr) and not has_cap(tr) then
    return "CrossTenantMigrationWithoutLicensePermanentException", string.format("No license was " ..
      "found for the source recipient, '%s', or the target recipient, '%s'. A Cross-tenant User " ..
      "Data Migration license is required to move a mailbox between tenants.", sr.Guid, tr.Guid)
  end
  exn, text = source_blocked(sr)
  if exn then return exn, text end
  local accepted = {}
  for _, d in ipairs(ctx.t.exo.accepted_domains) do accepted[lower(d.DomainName)] = true end
  for _, a in ipairs(tr.EmailAddresses or {}) do
    local dom = a:match("^[sS][mM][tT][pP]:.*@(.+)$")
    if dom and not accepted[lower(dom)] then
      return "NotAcceptedDomainException", string.format("The proxy address '%s' of the target " ..
        "object isn't in an accepted domain of the target organization.", a)
    end
  end
  return nil, nil, sr, src
end

-- Advance a batch to time now: start syncing users, finish syncs, complete.
local function advance(ctx, b)
  local now, t = ctx.now, ctx.t
  local users = musers(t)
  if b.Status == "Syncing" or b.Status == "Completing" then
    local all_done, failed = true, 0
    for _, key in ipairs(b._users) do
      local u = users[key]
      if u.Status == "Queued" or u.Status == "Syncing" and not u._sync_end then
        local tr = U.find(ctx, u.Identity, U.MAILUSER, true)
        local exn, text, sr, src
        if not tr then exn, text = "MigrationPermanentException", "The target object isn't found."
        else exn, text, sr, src = check(ctx, b, tr) end
        if exn then
          u.Status, u.StatusSummary = "Failed", "Failed"
          u.ErrorSummary = "Microsoft.Exchange.Migration." .. exn .. ": " .. text
        else
          u.Status, u.StatusSummary = "Syncing", "Active"
          u._source_tenant, u._source = src.id, sr.Guid
          u.MailboxGuid = sr.ExchangeGuid
          u._sync_end = now + M.SYNC_BASE + (sr.TotalItemSize or 0) / M.SYNC_RATE
          local mr = { Guid = ctx.sim.rng:guid(), DisplayName = tr.DisplayName, Alias = tr.Alias,
                       ExchangeGuid = sr.ExchangeGuid, Status = "InProgress", BatchName = b.Name,
                       Flags = "CrossTenant, Pull, Join", RemoteHostName = "outlook.office.com",
                       TargetDatabase = "", RecipientTypeDetails = "MailUser", created = now,
                       _user = key, _size = sr.TotalItemSize or 0 }
          t.exo.move_requests[mr.Guid] = mr
          u._move = mr.Guid
        end
      end
      if u.Status == "Syncing" and u._sync_end and u._sync_end <= now then
        u.Status, u.StatusSummary = "Synced", "Synced"
        u.LastSuccessfulSyncTime = U.time(u._sync_end)
        local mr = t.exo.move_requests[u._move or ""]
        if mr then mr.Status = "Synced" end
      end
      if u.Status == "Failed" then failed = failed + 1 end
      if u.Status ~= "Synced" and u.Status ~= "Failed" and u.Status ~= "Completed" then all_done = false end
    end
    if b.Status == "Syncing" and all_done then
      b.Status = failed > 0 and "SyncedWithErrors" or "Synced"
      b._synced_at = now
    end
  end
  if (b.Status == "Synced" or b.Status == "SyncedWithErrors") and
     (b.AutoComplete or (b.CompleteAfter and b._complete_after and b._complete_after <= now)) then
    b.Status, b._completing_at = "Completing", now
  end
  if b.Status == "Completing" and b._completing_at + M.COMPLETE_SECONDS <= now then
    local failed = 0
    for _, key in ipairs(b._users) do
      local u = users[key]
      if u.Status == "Synced" then M.complete_user(ctx, b, u) end
      if u.Status == "Failed" then failed = failed + 1 end
    end
    b.Status = failed > 0 and "CompletedWithErrors" or "Completed"
  end
end

-- The conversions of a completed move (ms-setup-and-prep.md §6.4, §5.1).
function M.complete_user(ctx, b, u)
  local t = ctx.t
  local tr = U.find(ctx, u.Identity, U.MAILUSER, true)
  local src = ctx.state.tenants[u._source_tenant or ""]
  local sr = src and src.exo.recipients[u._source or ""]
  if not tr or not sr then
    u.Status, u.StatusSummary, u.ErrorSummary = "Failed", "Failed", "The target object isn't found."
    return
  end
  local tdd = lower(b.TargetDeliveryDomain or t.initial_domain)
  local fwd
  for _, a in ipairs(tr.EmailAddresses or {}) do
    local addr = a:match("^[sS][mM][tT][pP]:(.+)$")
    if addr and lower(addr):sub(-#tdd - 1) == "@" .. tdd then fwd = addr end
  end
  fwd = fwd or tr.PrimarySmtpAddress
  model.update_recipient(t, tr, { RecipientType = "UserMailbox", RecipientTypeDetails = "UserMailbox",
    ExternalEmailAddress = model.cjson.null, IsMailboxEnabled = true, ArchiveStatus =
      (tr.ArchiveGuid and tr.ArchiveGuid ~= ZERO) and "Active" or "None",
    TotalItemSize = sr.TotalItemSize, ItemCount = sr.ItemCount,
    TotalDeletedItemSize = sr.TotalDeletedItemSize })
  model.update_recipient(src, sr, { RecipientType = "MailUser", RecipientTypeDetails = "MailUser",
    ExternalEmailAddress = "SMTP:" .. fwd, TotalItemSize = 0, ItemCount = 0 })
  u.Status, u.StatusSummary = "Completed", "Completed"
  local mr = t.exo.move_requests[u._move or ""]
  if mr then mr.Status = "Completed"; mr.RecipientTypeDetails = "UserMailbox" end
end

local function find_batch(ctx, identity)
  local id = lower(tostring(identity))
  for k, b in pairs(batches(ctx.t)) do
    if lower(k) == id or lower(b.Guid) == id then return b end
  end
  U.not_found(ctx, identity)
end

local function present_batch(b)
  return U.present(b, { Identity = b.Name, Id = b.Name, TotalCount = #b._users,
    MigrationType = "ExchangeRemoteMove", BatchDirection = "Onboarding" })
end

M["Get-MigrationBatch"] = function(ctx, p)
  if p.Identity ~= nil then
    local b = find_batch(ctx, p.Identity)
    advance(ctx, b)
    return { b }, present_batch
  end
  local out = {}
  for _, b in pairs(batches(ctx.t)) do
    advance(ctx, b)
    if (not p.Status or b.Status == p.Status) and (not p.Endpoint or lower(b.SourceEndpoint or "") == lower(tostring(p.Endpoint))) then
      out[#out + 1] = b
    end
  end
  return out, present_batch
end

M["New-MigrationBatch"] = function(ctx, p)
  local t = ctx.t
  if batches(t)[p.Name] then
    U.fail(400, U.EX.AlreadyExists, "A migration batch with the name '%s' already exists.", p.Name)
  end
  local ep = p.SourceEndpoint and O.endpoint(ctx, p.SourceEndpoint)
  local rows = p.CSVData and csv_rows(bytes_csv(p.CSVData), p.AllowUnknownColumnsInCsv)
               or U.list(p.Users or p.UserIds)
  local users = musers(t)
  local b = { Name = p.Name, Guid = ctx.sim.rng:guid(), Status = "Created",
              SourceEndpoint = ep and ep.Name, TargetDeliveryDomain = p.TargetDeliveryDomain,
              AutoComplete = p.AutoComplete or false, CompleteAfter = p.CompleteAfter,
              NotificationEmails = U.list(p.NotificationEmails), _users = {}, created = ctx.now }
  if type(p.CompleteAfter) == "string" then
    local y, mo, d, h, mi, s = p.CompleteAfter:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
    if y then
      b._complete_after = os.time { year = y, month = mo, day = d, hour = h, min = mi, sec = s }
        - os.time(os.date("!*t", 0))
    end
  end
  for _, addr in ipairs(rows) do
    local key = lower(addr)
    local cur = users[key]
    if cur and batches(t)[cur.BatchId] then
      U.fail(400, "Microsoft.Exchange.Migration.UserDuplicateInOtherBatchException",
        "The user '%s' already exists in batch '%s'.", addr, cur.BatchId)
    end
    users[key] = { Identity = addr, BatchId = p.Name, Status = "Queued", StatusSummary = "Active",
                   RecipientType = "Mailbox", Guid = ctx.sim.rng:guid(), created = ctx.now }
    b._users[#b._users + 1] = key
  end
  batches(t)[p.Name] = b
  if p.AutoStart then b.Status = "Syncing"; b._started = ctx.now end
  return { present_batch(b) }
end

M["Set-MigrationBatch"] = function(ctx, p)
  local b = find_batch(ctx, p.Identity)
  if p.CompleteAfter ~= nil then b.CompleteAfter = p.CompleteAfter end
  if p.NotificationEmails ~= nil then b.NotificationEmails = U.list(p.NotificationEmails) end
  return {}
end

M["Start-MigrationBatch"] = function(ctx, p)
  local b = find_batch(ctx, p.Identity)
  advance(ctx, b)
  if b.Status == "Created" or b.Status == "Stopped" or b.Status == "SyncedWithErrors" or b.Status == "Failed" then
    for _, key in ipairs(b._users) do
      local u = musers(ctx.t)[key]
      if u.Status == "Failed" or u.Status == "Stopped" then u.Status, u._sync_end = "Queued", nil end
    end
    b.Status = "Syncing"
  else
    U.fail(400, U.EX.Migration, "The migration batch '%s' can't be started in state %s.", b.Name, b.Status)
  end
  advance(ctx, b)
  return {}
end

M["Stop-MigrationBatch"] = function(ctx, p)
  local b = find_batch(ctx, p.Identity)
  advance(ctx, b)
  if b.Status ~= "Syncing" then
    U.fail(400, U.EX.Migration, "The migration batch '%s' can't be stopped in state %s.", b.Name, b.Status)
  end
  for _, key in ipairs(b._users) do
    local u = musers(ctx.t)[key]
    if u.Status == "Syncing" or u.Status == "Queued" then u.Status, u.StatusSummary = "Stopped", "Stopped" end
  end
  b.Status = "Stopped"
  return {}
end

M["Complete-MigrationBatch"] = function(ctx, p)
  local b = find_batch(ctx, p.Identity)
  advance(ctx, b)
  if b.Status ~= "Synced" and b.Status ~= "SyncedWithErrors" then
    U.fail(400, U.EX.Migration, "The migration batch '%s' can't be completed in state %s; wait " ..
      "until it is Synced.", b.Name, b.Status)
  end
  b.Status, b._completing_at = "Completing", ctx.now
  for _, key in ipairs(b._users) do
    local u = musers(ctx.t)[key]
    if u.Status == "Synced" then u.Status, u.StatusSummary = "Completing", "Active" end
  end
  for _, key in ipairs(b._users) do
    local u = musers(ctx.t)[key]
    if u.Status == "Completing" then u.Status = "Synced" end      -- advance() completes them
  end
  return {}
end

M["Remove-MigrationBatch"] = function(ctx, p)
  local b = find_batch(ctx, p.Identity)
  local users = musers(ctx.t)
  for _, key in ipairs(b._users) do
    local u = users[key]
    if u and u._move then ctx.t.exo.move_requests[u._move] = nil end
    users[key] = nil
  end
  batches(ctx.t)[b.Name] = nil
  return {}
end

local function present_user(u)
  return U.present(u, { Identity = u.Identity, MailboxEmailAddress = u.Identity,
                        Error = u.ErrorSummary })
end

local function find_user(ctx, identity)
  local u = musers(ctx.t)[lower(tostring(identity))]
  if not u then U.not_found(ctx, identity) end
  local b = batches(ctx.t)[u.BatchId]
  if b then advance(ctx, b) end
  return u
end

M["Get-MigrationUser"] = function(ctx, p)
  if p.Identity ~= nil or p.EmailAddress ~= nil then
    return { find_user(ctx, p.Identity or p.EmailAddress) }, present_user
  end
  for _, b in pairs(batches(ctx.t)) do advance(ctx, b) end
  local out = {}
  for _, u in pairs(musers(ctx.t)) do
    local ok = (not p.BatchId or lower(u.BatchId) == lower(tostring(p.BatchId))) and
               (not p.Status or u.Status == p.Status) and
               (not p.MailboxGuid or lower(u.MailboxGuid or "") == lower(p.MailboxGuid)) and
               (not p.StatusSummary or u.StatusSummary == p.StatusSummary)
    if ok then out[#out + 1] = u end
  end
  return out, present_user
end

-- Remove-MigrationUser: the user leaves its batch and its move request goes with it, as for
-- Remove-MigrationBatch; the address is then free for a new batch (ms-setup-and-prep.md §8: "remove
-- the user, add to a new batch").  Removal is immediate (EXO shows "Removing" for a while).
M["Remove-MigrationUser"] = function(ctx, p)
  U.only_simulated("Remove-MigrationUser", p, U.set("Identity", "Confirm", "WhatIf"))
  local u = find_user(ctx, p.Identity)
  local users, key = musers(ctx.t), lower(u.Identity)
  if u._move then ctx.t.exo.move_requests[u._move] = nil end
  local b = batches(ctx.t)[u.BatchId]
  if b then
    for i = #b._users, 1, -1 do
      if b._users[i] == key then table.remove(b._users, i) end
    end
  end
  users[key] = nil
  return {}
end

-- Get-MigrationStatistics: one organization-wide object counting the migration users of every
-- batch by state.  Property names as the service returns them; the state each count takes is
-- [inferred]: Queued -> Pending, Syncing/Completing -> Active, Completed -> Finalized.
local STAT_OF = { Queued = "PendingCount", Syncing = "ActiveCount", Completing = "ActiveCount",
                  Stopped = "StoppedCount", Synced = "SyncedCount", Completed = "FinalizedCount",
                  Failed = "FailedCount" }

M["Get-MigrationStatistics"] = function(ctx, p)
  U.only_simulated("Get-MigrationStatistics", p, {})
  for _, b in pairs(batches(ctx.t)) do advance(ctx, b) end
  local st = { Identity = ctx.t.initial_domain, TotalCount = 0, ActiveCount = 0, StoppedCount = 0,
               SyncedCount = 0, FinalizedCount = 0, FailedCount = 0, PendingCount = 0,
               ProvisionedCount = 0, MigrationType = "ExchangeRemoteMove", IsValid = true }
  for _, u in pairs(musers(ctx.t)) do
    st.TotalCount = st.TotalCount + 1
    local k = STAT_OF[u.Status]
    if k then st[k] = st[k] + 1 end
  end
  return { U.present(st) }
end

M["Get-MigrationUserStatistics"] = function(ctx, p)
  local u = find_user(ctx, p.Identity)
  local mr = ctx.t.exo.move_requests[u._move or ""]
  local pct = 0
  if u.Status == "Synced" or u.Status == "Completed" then pct = u.Status == "Completed" and 100 or 95
  elseif u._sync_end and mr then
    pct = math.floor(math.min(94, 95 * (ctx.now - mr.created) / math.max(1, u._sync_end - mr.created)))
  end
  local size = mr and mr._size or 0
  return { U.present(u, { Identity = u.Identity, PercentageComplete = pct,
    BytesTransferred = math.floor(size * pct / 100), EstimatedTotalTransferSize = size,
    SkippedItemCount = 0, Error = u.ErrorSummary,
    Report = p.IncludeReport and ("Status " .. u.Status) or nil }) }
end

local function present_move(mr)
  return U.present(mr, { Identity = mr.Alias or mr.Guid, Id = mr.Alias })
end

M["Get-MoveRequest"] = function(ctx, p)
  for _, b in pairs(batches(ctx.t)) do advance(ctx, b) end
  local out = {}
  for _, mr in pairs(ctx.t.exo.move_requests) do
    local ok = (not p.Identity or lower(mr.Alias or "") == lower(tostring(p.Identity)) or
                lower(mr.Guid) == lower(tostring(p.Identity)) or
                lower(mr.ExchangeGuid or "") == lower(tostring(p.Identity))) and
               (not p.BatchName or lower(mr.BatchName or "") == lower(p.BatchName)) and
               (not p.Status or mr.Status == p.Status)
    if ok then out[#out + 1] = mr end
  end
  if p.Identity and #out == 0 then U.not_found(ctx, p.Identity) end
  return out, present_move
end

M["Get-MoveRequestStatistics"] = function(ctx, p)
  local list = M["Get-MoveRequest"](ctx, { Identity = p.Identity })
  local mr = list[1]
  local u = musers(ctx.t)[mr._user or ""]
  local pct = mr.Status == "Completed" and 100 or mr.Status == "Synced" and 95 or
    (u and u._sync_end and math.floor(math.min(94, 95 * (ctx.now - mr.created) /
      math.max(1, u._sync_end - mr.created))) or 0)
  return { U.present(mr, { Identity = mr.Alias, PercentComplete = pct,
    TotalMailboxSize = U.size(mr._size), BytesTransferred = U.size(math.floor(mr._size * pct / 100)),
    StatusDetail = mr.Status }) }
end

return M
