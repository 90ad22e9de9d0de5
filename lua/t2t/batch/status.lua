-- t2t.batch.status: what the service reports about a batch and its users, as one shape for both
-- backends -- per user: the state an admin reads (Queued, Syncing, Stalled, Synced,
-- NeedsApproval, Completing, Completed, Failed, Stopped), percent, bytes and items transferred,
-- skipped items, the failure's exception; per batch: counts by state, throughput and ETA, the
-- failures grouped by exception.  Pure: the backends feed it the objects they read.
local M = {}
local lower, fmt = string.lower, string.format

M.STATES = { "Queued", "Syncing", "Stalled", "Synced", "NeedsApproval", "Completing", "Completed", "Failed", "Stopped" }
M.MOVING = { Queued = true, Syncing = true, Stalled = true, Completing = true }
M.DONE = { Completed = true }

-- Bytes of a size the service prints ("1.5 GB (1,610,612,736 bytes)"), or a number.
function M.bytes(v)
  if type(v) == "number" then return v end
  if type(v) ~= "string" then return nil end
  local n = v:match("%(([%d,]+) bytes%)")
  if n then return tonumber((n:gsub(",", ""))) end
  return tonumber(v)
end

-- Epoch seconds of a time the service prints (ISO 8601, with or without an offset).
function M.time(v)
  if type(v) == "number" then return v end
  if type(v) ~= "string" then return nil end
  return require("t2t.dkim").parse_time(v)
end

-- The exception's short name in an error text ("...MissingExchangeGuidException: ...").
function M.exception(text)
  if type(text) ~= "string" then return nil end
  local all, last = {}, nil
  for e in text:gmatch("([%w]+Exception)") do all[#all + 1] = e; last = e end
  -- "Microsoft.Exchange.Migration.X: ..." names X first; a generic wrapper names it last
  for _, e in ipairs(all) do if e ~= "MigrationPermanentException" and e ~= "MigrationTransientException" then return e end end
  return last
end

local RAW = { Completed = "Completed", CompletedWithWarnings = "Completed", CompletionSynced = "Completing",
              Completing = "Completing", Synced = "Synced", IncrementalSynced = "Synced", Failed = "Failed",
              IncrementalFailed = "Failed", CompletionFailed = "Failed", Corrupted = "Failed",
              Queued = "Queued", Starting = "Queued", Provisioning = "Syncing", ProvisionUpdating = "Syncing",
              Validating = "Queued", Syncing = "Syncing", IncrementalSyncing = "Syncing",
              Stopped = "Stopped", Stopping = "Stopped", IncrementalStopped = "Stopped", Removing = "Stopped" }

-- state(u) -> the admin's state of a normalized user (needs approval and stalls included).
function M.state(u)
  local s = RAW[u.status or ""] or u.status or "Queued"
  if s == "Synced" and u.approval then return "NeedsApproval" end
  if s == "Syncing" and u.stall then return "Stalled" end
  return s
end

-- user(entry) -> a normalized user from a Get-MigrationUser object.
function M.user(e)
  local u = { address = e.Identity or e.MailboxEmailAddress, batch = e.BatchId, id = e.Guid,
              status = e.Status, error = e.ErrorSummary, exception = M.exception(e.ErrorSummary),
              dcs = e.DataConsistencyScore, approval = e.HasUnapprovedSkippedItems == true,
              skipped = tonumber(e.SkippedItemCount) or 0, items = tonumber(e.SyncedItemCount),
              last_sync = M.time(e.LastSuccessfulSyncTime), raw = e }
  u.state = M.state(u)
  if M.DONE[u.state] then u.percent = 100 elseif u.state == "Synced" or u.state == "NeedsApproval" then u.percent = 95 end
  return u
end

-- merge(u, st): the move's statistics (Get-MoveRequestStatistics) onto a normalized user.
function M.merge(u, st)
  u.percent = tonumber(st.PercentComplete) or u.percent
  u.bytes, u.size = M.bytes(st.BytesTransferred), M.bytes(st.TotalMailboxSize)
  u.items = tonumber(st.ItemsTransferred) or u.items
  u.total_items = tonumber(st.TotalMailboxItemCount)
  local detail = st.StatusDetail
  u.stall = type(detail) == "string" and detail:match("^Stalled") and detail or nil
  u.detail = detail
  u.times = { queued = M.time(st.QueuedTimestamp), start = M.time(st.StartTimestamp),
              synced = M.time(st.InitialSeedingCompletedTimestamp), completed = M.time(st.CompletionTimestamp),
              failed = M.time(st.FailureTimestamp) }
  u.rate = M.bytes(st.BytesTransferredPerMinute)
  u.bad, u.large = tonumber(st.BadItemsEncountered), tonumber(st.LargeItemsEncountered)
  u.stats = true
  u.state = M.state(u)
  M.settle(u)
end

-- settle(u): a user past its initial sync has all its bytes across (95 %, 100 % completed).
function M.settle(u)
  local st = u.state
  if st == "Synced" or st == "NeedsApproval" or st == "Completing" or M.DONE[st] then
    u.bytes = u.size or u.bytes
    u.percent = M.DONE[st] and 100 or math.max(u.percent or 0, 95)
    u.stall = nil
  end
end

-- pick(users, o) -> the users whose statistics to read now: all (o.all), else those in motion
-- first, then settled ones never read, at most o.detail (default 150), oldest reads first.
function M.pick(users, o)
  if o.all then return users end
  local limit = o.detail or 150
  local cache = o.cache or {}
  local moving, rest = {}, {}
  for _, u in ipairs(users) do
    local c = cache[lower(u.address or "")]
    if M.MOVING[u.state] or u.state == "Synced" and not (c and c.stats) then
      moving[#moving + 1] = { u = u, at = c and c.at or -1 }
    elseif u.state ~= "Failed" and u.state ~= "Stopped" and not c then
      rest[#rest + 1] = { u = u, at = -1 }
    end
  end
  table.sort(moving, function(a, b) return a.at < b.at end)
  local out = {}
  for _, l in ipairs { moving, rest } do
    for _, x in ipairs(l) do
      if #out >= limit then return out end
      out[#out + 1] = x.u
    end
  end
  return out
end

-- from_cache(users, cache): statistics read on an earlier refresh for the users not read now.
function M.from_cache(users, cache)
  for _, u in ipairs(users) do
    local c = cache[lower(u.address or "")]
    if not u.stats and c and c.stats then
      local keep_status, keep_state = u.status, u.state
      M.merge(u, c.stats)
      u.status = keep_status
      u.state = (keep_state == "Syncing" and u.stall) and "Stalled" or keep_state
      if u.state ~= "Stalled" then u.stall = nil end
      M.settle(u)
    end
  end
end

-- batch(b) -> the batch object's fields an admin reads.
function M.batch(b)
  return { name = b.Identity or b.Name, status = b.Status, total = tonumber(b.TotalCount),
           endpoint = b.SourceEndpoint, tdd = b.TargetDeliveryDomain, created = M.time(b.CreationDateTime),
           started = M.time(b.StartDateTime), initial_sync = M.time(b.InitialSyncDateTime),
           complete_after = b.CompleteAfter, start_after = b.StartAfter, dcs = b.DataConsistencyScore,
           notify = b.NotificationEmails, raw = b }
end

-- by_address(entries) -> {lower address = {entry, ...}}: a backend's migration users by user (a
-- user in two batches has two entries).
function M.by_address(entries)
  local out = {}
  for _, e in ipairs(entries) do
    local k = lower(e.Identity or e.MailboxEmailAddress or "")
    out[k] = out[k] or {}
    table.insert(out[k], e)
  end
  return out
end

-- summary(snap, now) -> counts by state, bytes, throughput (bytes/s), ETA (s), settled, and
-- the failures grouped by exception.
function M.summary(snap, now)
  local s = { counts = {}, total = #snap.users, bytes = 0, size = 0, known = 0, failures = {}, settled = true }
  for _, st in ipairs(M.STATES) do s.counts[st] = 0 end
  local known_size, nsize, moving_known, remaining_known, moving = 0, 0, 0, 0, 0
  for _, u in ipairs(snap.users) do
    s.counts[u.state] = (s.counts[u.state] or 0) + 1
    if M.MOVING[u.state] then s.settled = false; moving = moving + 1 end
    if u.stats then
      s.known = s.known + 1
      s.bytes = s.bytes + (u.bytes or 0)
      if u.size then known_size = known_size + u.size; nsize = nsize + 1 end
      if M.MOVING[u.state] then
        moving_known = moving_known + 1
        remaining_known = remaining_known + math.max(0, (u.size or 0) - (u.bytes or 0))
      end
    end
  end
  local mean = nsize > 0 and known_size / nsize or 0
  s.mean_size = mean
  local started = snap.batch.started
  local elapsed = started and now and math.max(1, now - started) or nil
  if elapsed and s.known > 0 then
    local started_users = 0
    for _, u in ipairs(snap.users) do if u.state ~= "Queued" and u.state ~= "Stopped" then started_users = started_users + 1 end end
    local with_bytes = 0
    for _, u in ipairs(snap.users) do if u.stats and u.state ~= "Queued" then with_bytes = with_bytes + 1 end end
    s.throughput = s.bytes / elapsed * (with_bytes > 0 and math.max(1, started_users / with_bytes) or 1)
  end
  if moving > 0 then
    local remaining = moving_known > 0 and remaining_known * (moving / moving_known) or mean * moving
    s.remaining = remaining
    if s.throughput and s.throughput > 0 then s.eta = remaining / s.throughput end
  end
  s.percent = s.total > 0 and math.floor((s.counts.Completed * 100 + (s.counts.Synced + s.counts.NeedsApproval) * 95 +
    s.counts.Completing * 97 + M.partial(snap.users)) / s.total) or 0
  s.failures = M.failures(snap.users)
  return s
end

-- partial(users) -> the sum of the percents of the users still syncing (as far as known).
function M.partial(users)
  local n = 0
  for _, u in ipairs(users) do
    if (u.state == "Syncing" or u.state == "Stalled") and u.percent then n = n + u.percent end
  end
  return n
end

-- failures(users) -> {{exception, users = {...}}}, the largest group first; needs-approval and
-- stalled users are groups of their own ("NeedsApproval", "Stalled").
function M.failures(users)
  local by, out = {}, {}
  for _, u in ipairs(users) do
    local key = u.state == "Failed" and (require("t2t.batch.fixes").key(u.exception, u.error) or "UnknownFailure") or
                (u.state == "NeedsApproval" or u.state == "Stalled") and u.state or nil
    if key then
      if not by[key] then by[key] = { exception = key, users = {} }; out[#out + 1] = by[key] end
      table.insert(by[key].users, u)
    end
  end
  table.sort(out, function(a, b)
    if #a.users ~= #b.users then return #a.users > #b.users end
    return a.exception < b.exception
  end)
  return out
end

-- Human sizes and durations for the screen and reports.
function M.human(bytes)
  if not bytes then return "-" end
  local units = { "B", "KB", "MB", "GB", "TB" }
  local i = 1
  while bytes >= 1024 and i < #units do bytes = bytes / 1024; i = i + 1 end
  return i == 1 and fmt("%d B", math.floor(bytes)) or fmt("%.1f %s", bytes, units[i])
end

function M.duration(s)
  if not s then return "-" end
  if s < 9.95 and s ~= math.floor(s) then return fmt("%.1fs", s) end   -- a simulated run's seconds
  s = math.floor(s + 0.5)
  if s >= 86400 then return fmt("%dd%02dh", s // 86400, s % 86400 // 3600) end
  if s >= 3600 then return fmt("%dh%02dm", s // 3600, s % 3600 // 60) end
  if s >= 60 then return fmt("%dm%02ds", s // 60, s % 60) end
  return fmt("%ds", s)
end

return M
