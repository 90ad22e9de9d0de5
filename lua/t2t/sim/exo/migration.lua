-- t2t.sim.exo.migration: the migration cmdlets -- batches, migration users, move requests and
-- their statistics -- over the engine in t2t.sim.exo.moves (ms-setup-and-prep.md §6-8).  Every
-- cmdlet first lets the engine catch up with the clock, so what it answers is what the service
-- would show at that moment.  Property names: the cmdlet pages and the EAC's migration pages
-- name them (manage-migration-batches, migration-users-status-report, track-prevent-data-loss-
-- dcs); which properties each object carries beyond those is [inferred].
local U = require "t2t.sim.exo.util"
local O = require "t2t.sim.exo.orgrel"
local E = require "t2t.sim.exo.moves"

local M = {}
local lower, fmt = string.lower, string.format

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
  text = text:gsub("^\239\187\191", "")
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
  local rows, seen = {}, {}
  for i = 2, #lines do
    local f, k = nil, 0
    for x in lines[i]:gmatch("[^,]+") do k = k + 1; if k == col then f = x end end
    f = f and (f:gsub('^%s*"?', ""):gsub('"?%s*$', ""))
    if f and f ~= "" and not seen[lower(f)] then seen[lower(f)] = true; rows[#rows + 1] = f end
  end
  if #rows > 2000 then U.fail(400, U.EX.Migration, "A migration batch can contain at most 2,000 users.") end
  return rows
end

-- A DateTime parameter (ISO text, UTC unless it carries an offset) -> epoch seconds.
local function epoch(v)
  if type(v) == "number" then return v end
  local y, mo, d, h, mi, s = tostring(v):match("^(%d+)-(%d+)-(%d+)[T ](%d+):(%d+):(%d+)")
  if not y then U.fail(400, U.EX.Argument, "Cannot convert '%s' to a DateTime.", tostring(v)) end
  local t = os.time { year = y, month = mo, day = d, hour = h, min = mi, sec = s }
  t = t + (os.time() - os.time(os.date("!*t")))      -- os.time read the fields as local time
  local sign, oh, om = tostring(v):match("([%+%-])(%d%d):?(%d%d)$")
  if sign and not tostring(v):match("Z$") then
    t = t - (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "+" and 1 or -1)
  end
  return t
end

local function find_batch(ctx, identity)
  local id = lower(tostring(identity))
  for k, b in pairs(E.batches(ctx.t)) do
    if (lower(k) == id or lower(b.Guid) == id) and U.visible(ctx, b) then return b end
  end
  U.not_found(ctx, identity)
end

local function users_of(ctx, b)
  local users, out = E.users(ctx.t), {}
  for _, key in ipairs(b._users) do if users[key] then out[#out + 1] = users[key] end end
  return out
end

local function worst(a, b)
  local rank = { Perfect = 1, Good = 2, Investigate = 3, Poor = 4 }
  if not a then return b end
  if not b then return a end
  return (rank[b] or 0) > (rank[a] or 0) and b or a
end

local function present_batch(ctx, b, report)
  local status = E.batch_status(ctx, b)
  local c = { TotalCount = 0, ActiveCount = 0, StoppedCount = 0, SyncedCount = 0, FinalizedCount = 0,
              FailedCount = 0, PendingCount = 0, ProvisionedCount = 0 }
  local dcs, synced_at, last_sync
  for _, u in ipairs(users_of(ctx, b)) do
    c.TotalCount = c.TotalCount + 1
    local s = u.Status
    local k = s == "Queued" and "PendingCount" or (s == "Syncing" or s == "Completing") and "ActiveCount"
      or s == "Stopped" and "StoppedCount" or s == "Synced" and "SyncedCount" or E.DONE[s] and "FinalizedCount"
      or s == "Failed" and "FailedCount"
    if k then c[k] = c[k] + 1 end
    if u._start then c.ProvisionedCount = c.ProvisionedCount + 1 end
    dcs = worst(dcs, u.DataConsistencyScore)
    if u._synced then
      synced_at = math.max(synced_at or 0, u._synced)
      last_sync = math.max(last_sync or 0, u._completed or u._synced)
    end
  end
  local initial = (c.SyncedCount + c.FinalizedCount + c.FailedCount == c.TotalCount and synced_at) or nil
  local extra = { Identity = b.Name, Status = status, MigrationType = "ExchangeRemoteMove",
    BatchDirection = "Onboarding", CreationDateTime = U.time(b.created), StartDateTime = U.time(b._started),
    InitialSyncDateTime = U.time(initial), InitialSyncDuration = initial and b._started and
      E.timespan(initial - b._started) or nil, LastSyncedDateTime = U.time(last_sync),
    StartAfter = b.StartAfter, CompleteAfter = b.CompleteAfter, DataConsistencyScore = dcs or "Perfect",
    Report = report and fmt("%s: %s, %d users", b.Name, status, c.TotalCount) or nil }
  for k, v in pairs(c) do extra[k] = v end
  return U.present(b, extra)
end

M["Get-MigrationBatch"] = function(ctx, p)
  U.only_simulated("Get-MigrationBatch", p, U.set("Identity", "Status", "Endpoint", "IncludeReport",
    "DiagnosticInfo", "ResultSize"))
  E.advance(ctx)
  local pres = function(b) return present_batch(ctx, b, p.IncludeReport) end
  if p.Identity ~= nil then return { find_batch(ctx, p.Identity) }, pres end
  local out = {}
  for _, b in pairs(E.batches(ctx.t)) do
    local ok = U.visible(ctx, b) and not b._graph_job and (not p.Status or lower(E.batch_status(ctx, b)) == lower(p.Status)) and
      (not p.Endpoint or lower(b.SourceEndpoint or "") == lower(tostring(p.Endpoint)))
    if ok then out[#out + 1] = b end
  end
  return out, pres
end

-- add(ctx, b, rows): the CSV's users join batch b; a user already in it is left as it is.
local function add(ctx, b, rows)
  for _, addr in ipairs(rows) do E.add_user(ctx, b, addr) end
end

local NEW_KNOWN = U.set("Name", "CSVData", "SourceEndpoint", "TargetDeliveryDomain", "AutoStart",
  "AutoComplete", "CompleteAfter", "StartAfter", "NotificationEmails", "AllowUnknownColumnsInCsv",
  "Users", "UserIds", "TimeZone", "Confirm", "WhatIf")

M["New-MigrationBatch"] = function(ctx, p)
  U.only_simulated("New-MigrationBatch", p, NEW_KNOWN)
  local t = ctx.t
  E.advance(ctx)
  for k in pairs(E.batches(t)) do
    if lower(k) == lower(p.Name) then
      U.fail(400, U.EX.AlreadyExists, "A migration batch with the name '%s' already exists.", p.Name)
    end
  end
  local ep = p.SourceEndpoint and O.endpoint(ctx, p.SourceEndpoint)
  if not ep then U.fail(400, U.EX.Migration, "A cross-tenant batch needs -SourceEndpoint (an ExchangeRemoteMove endpoint).") end
  local rows = p.CSVData and csv_rows(bytes_csv(p.CSVData), p.AllowUnknownColumnsInCsv) or U.list(p.Users or p.UserIds)
  if #rows == 0 then U.fail(400, U.EX.Migration, "The CSV file doesn't contain any users.") end
  local b = { Name = p.Name, Guid = ctx.sim.rng:guid(), SourceEndpoint = ep.Name,
              TargetDeliveryDomain = p.TargetDeliveryDomain, AutoComplete = p.AutoComplete or false,
              CompleteAfter = p.CompleteAfter and U.time(epoch(p.CompleteAfter)) or nil,
              StartAfter = p.StartAfter and U.time(epoch(p.StartAfter)) or nil,
              NotificationEmails = U.list(p.NotificationEmails), _users = {}, created = ctx.now,
              SubmittedByUser = ctx.claims and (ctx.claims.upn or ctx.claims.appid) or nil }
  if p.AutoComplete then b._complete_at = ctx.now end
  if p.CompleteAfter then b._complete_at = epoch(p.CompleteAfter) end
  if p.StartAfter then b._start_at = epoch(p.StartAfter) end
  E.batches(t)[p.Name] = b
  if p.AutoStart or p.StartAfter then b._started = ctx.now end
  add(ctx, b, rows)
  E.touch(t)
  E.advance(ctx)
  return { present_batch(ctx, b) }
end

M["Set-MigrationBatch"] = function(ctx, p)
  U.only_simulated("Set-MigrationBatch", p, U.set("Identity", "CompleteAfter", "StartAfter",
    "NotificationEmails", "AddUsers", "CSVData", "AllowUnknownColumnsInCsv", "ApproveSkippedItems",
    "Confirm", "WhatIf"))
  E.advance(ctx)
  local b = find_batch(ctx, p.Identity)
  if p.CompleteAfter ~= nil then
    b.CompleteAfter = U.time(epoch(p.CompleteAfter))
    E.request_completion(ctx, b, epoch(p.CompleteAfter))
  end
  if p.StartAfter ~= nil then b.StartAfter, b._start_at = U.time(epoch(p.StartAfter)), epoch(p.StartAfter) end
  if p.NotificationEmails ~= nil then b.NotificationEmails = U.list(p.NotificationEmails) end
  if p.AddUsers then
    if not p.CSVData then U.fail(400, U.EX.Argument, "-AddUsers takes the new users in -CSVData.") end
    add(ctx, b, csv_rows(bytes_csv(p.CSVData), p.AllowUnknownColumnsInCsv))
  end
  if p.ApproveSkippedItems then
    b._approved = true
    for _, u in ipairs(users_of(ctx, b)) do if u.HasUnapprovedSkippedItems then E.approve(ctx, u) end end
  end
  E.touch(ctx.t)
  return {}
end

M["Start-MigrationBatch"] = function(ctx, p)
  E.advance(ctx)
  local b = find_batch(ctx, p.Identity)
  local st = E.batch_status(ctx, b)
  if st == "Completed" or st == "Completing" then
    U.fail(400, U.EX.Migration, "The migration batch '%s' can't be started in state %s.", b.Name, st)
  end
  E.start_batch(ctx, b)
  E.advance(ctx)
  return {}
end

M["Stop-MigrationBatch"] = function(ctx, p)
  E.advance(ctx)
  local b = find_batch(ctx, p.Identity)
  local st = E.batch_status(ctx, b)
  if st ~= "Syncing" and st ~= "Synced" and st ~= "SyncedWithErrors" and st ~= "Waiting" then
    U.fail(400, U.EX.Migration, "The migration batch '%s' can't be stopped in state %s.", b.Name, st)
  end
  E.stop_batch(ctx, b)
  return {}
end

M["Complete-MigrationBatch"] = function(ctx, p)
  U.only_simulated("Complete-MigrationBatch", p, U.set("Identity", "Confirm", "WhatIf", "SyncAndComplete"))
  E.advance(ctx)
  local b = find_batch(ctx, p.Identity)
  local st = E.batch_status(ctx, b)
  local ok = st == "Synced" or st == "SyncedWithErrors" or st == "CompletedWithErrors" or
             (p.SyncAndComplete and st == "Syncing")
  if not ok then
    U.fail(400, U.EX.Migration, "The migration batch '%s' can't be completed in state %s; wait " ..
      "until it is Synced.", b.Name, st)
  end
  E.request_completion(ctx, b, ctx.now)
  E.advance(ctx)
  return {}
end

M["Remove-MigrationBatch"] = function(ctx, p)
  E.advance(ctx)
  local b = find_batch(ctx, p.Identity)
  for _, key in ipairs({ table.unpack(b._users) }) do E.remove_user(ctx, key) end
  E.batches(ctx.t)[b.Name] = nil
  E.touch(ctx.t)
  return {}
end

local function present_user(ctx, u)
  return U.present(u, { Identity = u.Identity, MailboxEmailAddress = u.Identity,
    DataConsistencyScore = u.DataConsistencyScore, HasUnapprovedSkippedItems = u.HasUnapprovedSkippedItems or false,
    SkippedItemCount = u.SkippedItemCount or 0, SyncedItemCount = u.SyncedItemCount or
      math.floor((u._items or 0) * E.progress(ctx, u)) })
end

-- The migration user for an identity: its GUID, or its address (the entry in its first batch).
local function find_user(ctx, identity)
  local id = lower(tostring(identity))
  local users = E.users(ctx.t)
  if users[id] then return users[id], id end
  for k, u in pairs(users) do if lower(u.Guid) == id then return u, k end end
  U.not_found(ctx, identity)
end

M["Get-MigrationUser"] = function(ctx, p)
  U.only_simulated("Get-MigrationUser", p, U.set("Identity", "EmailAddress", "BatchId", "Status",
    "StatusSummary", "MailboxGuid", "ResultSize", "IncludeAssociatedUsers"))
  E.advance(ctx)
  local pres = function(u) return present_user(ctx, u) end
  if p.Identity ~= nil or p.EmailAddress ~= nil then
    return { (find_user(ctx, p.Identity or p.EmailAddress)) }, pres
  end
  local out = {}
  for _, u in pairs(E.users(ctx.t)) do
    local ok = (not p.BatchId or lower(u.BatchId) == lower(tostring(p.BatchId))) and
               (not p.Status or lower(u.Status) == lower(p.Status)) and
               (not p.MailboxGuid or lower(u.MailboxGuid or "") == lower(p.MailboxGuid)) and
               (not p.StatusSummary or lower(u.StatusSummary or "") == lower(p.StatusSummary))
    if ok then out[#out + 1] = u end
  end
  return out, pres
end

-- Set-MigrationUser -ApproveSkippedItems (track-prevent-data-loss-dcs), -CompleteAfter.
M["Set-MigrationUser"] = function(ctx, p)
  U.only_simulated("Set-MigrationUser", p, U.set("Identity", "ApproveSkippedItems", "Confirm", "WhatIf"))
  E.advance(ctx)
  local u = find_user(ctx, p.Identity)
  if p.ApproveSkippedItems then
    if (u.DataConsistencyScore or E.score(u)) == "Poor" then
      U.fail(400, U.EX.Migration, "The skipped items of '%s' can't be approved: its Data Consistency " ..
        "Score is Poor. Contact Microsoft Support.", u.Identity)
    end
    E.approve(ctx, u)
  end
  return {}
end

-- Remove-MigrationUser: the user leaves its batch (a duplicate entry, by its GUID, alone), and
-- may then join a new batch (ms-setup-and-prep.md §8: "remove the user, add to a new batch").
M["Remove-MigrationUser"] = function(ctx, p)
  U.only_simulated("Remove-MigrationUser", p, U.set("Identity", "Confirm", "WhatIf"))
  E.advance(ctx)
  local _, key = find_user(ctx, p.Identity)
  E.remove_user(ctx, key)
  return {}
end

-- Get-MigrationStatistics: one organization-wide object counting the migration users of every
-- batch by state (the state each count takes is [inferred]).
local STAT_OF = { Queued = "PendingCount", Syncing = "ActiveCount", Completing = "ActiveCount",
                  Stopped = "StoppedCount", Synced = "SyncedCount", Completed = "FinalizedCount",
                  CompletedWithWarnings = "FinalizedCount", Failed = "FailedCount" }

M["Get-MigrationStatistics"] = function(ctx, p)
  U.only_simulated("Get-MigrationStatistics", p, {})
  E.advance(ctx)
  local st = { Identity = ctx.t.initial_domain, TotalCount = 0, ActiveCount = 0, StoppedCount = 0,
               SyncedCount = 0, FinalizedCount = 0, FailedCount = 0, PendingCount = 0,
               ProvisionedCount = 0, MigrationType = "ExchangeRemoteMove", IsValid = true }
  for _, u in pairs(E.users(ctx.t)) do
    st.TotalCount = st.TotalCount + 1
    local k = STAT_OF[u.Status]
    if k then st[k] = st[k] + 1 end
  end
  return { U.present(st) }
end

-- What MigrationUserStatistics and MoveRequestStatistics share: transfer progress and times.
local function transfer(ctx, u)
  local frac, stall = E.progress(ctx, u)
  local size = u._size or 0
  local now = ctx.now
  local stalled = 0
  if u._stall_from and now > u._stall_from then stalled = math.min(now, u._stall_to) - u._stall_from end
  local in_progress = u._start and ((u._synced or (u.Status == "Syncing" and now) or u._failed or now) - u._start - stalled) or 0
  return { frac = frac, stall = stall, bytes = math.floor(size * frac), size = size,
           items = math.floor((u._items or 0) * frac), stalled = stalled, in_progress = math.max(0, in_progress) }
end

local function skipped_items(u, limit)
  local out = {}
  for i = 1, math.min((u._bad or 0) + (u._large or 0), limit or 1000) do
    local large = i > (u._bad or 0)
    out[#out + 1] = { Kind = large and "LargeItem" or "CorruptItem", FolderName = "Inbox",
      Subject = large and fmt("Item %d over the 150 MB limit", i) or fmt("Corrupt item %d", i),
      DateReceived = U.time(u.created) }
  end
  return out
end

M["Get-MigrationUserStatistics"] = function(ctx, p)
  U.only_simulated("Get-MigrationUserStatistics", p, U.set("Identity", "IncludeReport",
    "IncludeSkippedItems", "LimitSkippedItemsTo", "DiagnosticInfo"))
  E.advance(ctx)
  local u = find_user(ctx, p.Identity)
  local x = transfer(ctx, u)
  local bag = present_user(ctx, u)
  local more = { PercentageComplete = E.percent(ctx, u), BytesTransferred = U.size(x.bytes),
    EstimatedTotalTransferSize = U.size(x.size), EstimatedTotalTransferCount = u._items or 0,
    TotalItemsInSourceMailboxCount = u._items or 0, StatusDetail = x.stall or u.Status,
    TotalQueuedDuration = E.timespan(u._queued_total), TotalInProgressDuration = E.timespan(x.in_progress),
    TotalStalledDuration = E.timespan(x.stalled),
    TotalSyncedDuration = E.timespan(u._synced and ((u._completing or ctx.now) - u._synced) or 0),
    SkippedItems = p.IncludeSkippedItems and skipped_items(u, p.LimitSkippedItemsTo) or nil,
    Report = p.IncludeReport and fmt("%s %s", u.Status, u.ErrorSummary or "") or nil }
  for k, v in pairs(more) do bag[k] = v end
  if type(bag.SkippedItems) == "table" then bag["SkippedItems@odata.type"] = "#Collection(Exchange.GenericHashTable)" end
  return { bag }
end

-- Move requests: the view of a migration user whose move has started (Get-MoveRequest -Flags
-- CrossTenant, §6.4); RequestStatus values from the cmdlet reference.
local MR_STATUS = { Syncing = "InProgress", Synced = "Synced", Completing = "CompletionInProgress",
                    Completed = "Completed", CompletedWithWarnings = "CompletedWithSkippedItems",
                    Failed = "Failed", Stopped = "Suspended", Queued = "Queued" }

local function move_name(ctx, u)
  local r = U.find(ctx, u.Identity, nil, true)
  return r and r.Alias or u.Identity, r and r.DisplayName or u.Identity, r
end

local function present_move(ctx, u)
  local alias, display = move_name(ctx, u)
  return U.present({ Identity = alias, Alias = alias, DisplayName = display, ExchangeGuid = u.MailboxGuid,
    Status = MR_STATUS[u.Status] or u.Status, BatchName = "MigrationService:" .. u.BatchId,
    Flags = "CrossTenant, Pull", RemoteHostName = "outlook.office.com", Direction = "Pull",
    RecipientTypeDetails = E.DONE[u.Status] and "UserMailbox" or "MailUser", created = u._start })
end

local function moves(ctx, p)
  local out = {}
  for _, u in pairs(E.users(ctx.t)) do
    if u._start and not u._dup then
      local alias = move_name(ctx, u)
      local id = p.Identity and lower(tostring(p.Identity))
      local ok = (not id or lower(alias) == id or lower(u.Identity) == id or lower(u.MailboxGuid or "") == id) and
        (not p.BatchName or lower("MigrationService:" .. u.BatchId) == lower(p.BatchName) or
         lower(u.BatchId) == lower(p.BatchName)) and
        (not p.Status or lower(MR_STATUS[u.Status] or "") == lower(p.Status))
      if ok then out[#out + 1] = u end
    end
  end
  return out
end

M["Get-MoveRequest"] = function(ctx, p)
  U.only_simulated("Get-MoveRequest", p, U.set("Identity", "BatchName", "Status", "Flags", "ResultSize"))
  E.advance(ctx)
  local out = moves(ctx, p)
  if p.Identity and #out == 0 then U.not_found(ctx, p.Identity) end
  return out, function(u) return present_move(ctx, u) end
end

M["Get-MoveRequestStatistics"] = function(ctx, p)
  U.only_simulated("Get-MoveRequestStatistics", p, U.set("Identity", "IncludeReport", "DiagnosticInfo"))
  E.advance(ctx)
  local u = moves(ctx, { Identity = p.Identity })[1]
  if not u then U.not_found(ctx, p.Identity) end
  local x = transfer(ctx, u)
  local bag = present_move(ctx, u)
  local elapsed = math.max(1, (u._synced or ctx.now) - u._start - x.stalled)
  local more = { PercentComplete = E.percent(ctx, u), StatusDetail = x.stall or MR_STATUS[u.Status] or u.Status,
    BytesTransferred = U.size(x.bytes), TotalMailboxSize = U.size(x.size),
    BytesTransferredPerMinute = U.size(math.floor(x.bytes / elapsed * 60)),
    TotalMailboxItemCount = u._items or 0, ItemsTransferred = x.items,
    BadItemsEncountered = u.Status == "Syncing" and 0 or (u._bad or 0),
    LargeItemsEncountered = u.Status == "Syncing" and 0 or (u._large or 0),
    DataConsistencyScore = u.DataConsistencyScore, QueuedTimestamp = U.time(u._queued),
    StartTimestamp = U.time(u._start), InitialSeedingCompletedTimestamp = U.time(u._synced),
    FinalSyncTimestamp = U.time(u._completing), CompletionTimestamp = U.time(u._completed),
    FailureTimestamp = U.time(u._failed), LastUpdateTimestamp = U.time(ctx.now),
    OverallDuration = E.timespan(ctx.now - u._start), TotalInProgressDuration = E.timespan(x.in_progress),
    TotalStalledDueToTargetDiskLatencyDuration = E.timespan(x.stalled),
    FailureType = u._exn, Message = u.ErrorSummary,
    Report = p.IncludeReport and fmt("%s %s", u.Status, u.ErrorSummary or "") or nil }
  for k, v in pairs(more) do bag[k] = v end
  return { bag }
end

-- Resume-MoveRequest: a failed or suspended move starts again (its migration user with it).
M["Resume-MoveRequest"] = function(ctx, p)
  U.only_simulated("Resume-MoveRequest", p, U.set("Identity", "Confirm", "WhatIf"))
  E.advance(ctx)
  local u = moves(ctx, { Identity = p.Identity })[1]
  if not u then U.not_found(ctx, p.Identity) end
  if u.Status == "Failed" or u.Status == "Stopped" then E.queue(ctx, u); E.touch(ctx.t) end
  return {}
end

-- The engine's knob for other services and the control API.
M.engine = E
M.find_batch = find_batch

return M
