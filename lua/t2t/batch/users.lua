-- t2t.batch.users: the users migrate-batch is given -- the users issue's inputs (a CSV of
-- SourceUser[,TargetUser][,Batch] or EmailAddress, a group, every mailbox, the export-users
-- collection file) or the prepare-users report -- made into what planning needs: the TARGET
-- address (the batch CSV's EmailAddress, §6.2), the source mailbox, the wanted batch, and the
-- delegates that tie users together (§5.6).  Users without a target mail user are left out,
-- each with the reason and what to run.
local mailuser = require "t2t.mailuser"
local MS = require "t2t.mailuser.session"
local C = require "t2t.mailuser.common"
local t2t = require "t2t"

local M = {}
local lower, fmt = string.lower, string.format

-- The prepare-users report's rows that are ready to move (ok), and the others with a reason.
local function prepared(ctx, path)
  local rows, err = mailuser.report.read(path)
  if not rows then ctx:fail("--prepared %s", err or "does not exist") end
  local entries, skipped = {}, {}
  for _, r in ipairs(rows) do
    local st = lower(r.Status or "")
    if (st == "ok" or st == "ready") and r.SourceUser then
      entries[#entries + 1] = { source = r.SourceUser, target = r.TargetUser ~= "" and r.TargetUser or nil }
    elseif r.SourceUser then
      skipped[#skipped + 1] = { source = r.SourceUser, reason = st == "migrated" and "already migrated (prepare-users)"
        or fmt("prepare-users reported it %s: %s", r.Status or "?", r.Problems or "") }
    end
  end
  return entries, skipped
end

-- records(ctx, p, run) -> source records (t2t.mailuser.export shape, delegates when known),
-- info {source = {name, tenant_id, domain}}, skipped {{source, reason}}.
local function records(ctx, p, run)
  local skipped = {}
  if p.from then
    local src, info = MS.from_file(ctx, p.from)
    local users = {}
    local ok, err = src.each(function(u) users[#users + 1] = u end)
    if not ok then ctx:fail("--from %s", tostring(err)) end
    return users, info, skipped
  end
  local entries
  if p.prepared then
    entries, skipped = prepared(ctx, p.prepared)
  end
  local src = run.source
  if not src then
    if not entries then ctx:usage("which users? --from FILE (export-users), --prepared FILE (prepare-users --report), " ..
      "or --csv/--group/--all with --source PROFILE") end
    ctx.log.warn("no source profile: planning without delegates (--source or --from keeps delegates together)")
    local users = {}
    for _, e in ipairs(entries) do
      users[#users + 1] = { PrimarySmtpAddress = e.source, TargetUser = e.target, key = lower(e.source) }
    end
    return users, { source = {} }, skipped
  end
  local sel = entries and { entries = entries } or MS.selector(ctx, p)
  local bar = sel.entries and MS.progress(ctx, "Reading mailboxes and delegates", #sel.entries)
  local users, failures = mailuser.export(src, sel, { depth = "full", scope = false, concurrency = p.concurrency,
    on_progress = function(done)
      if bar then bar:update(done) else ctx.log.info("  %d mailboxes read", done) end
    end })
  if bar then bar:finish() end
  if not users then ctx:fail("reading the source mailboxes: %s", tostring(failures)) end
  local placed = M.placed_by_source(run.journal_in_use)
  for _, f in ipairs(failures or {}) do
    local rec = f.entry.source and placed[lower(f.entry.source)]
    if rec then        -- no mailbox now: moved (the target is looked up), or gone -- said per user
      users[#users + 1] = { PrimarySmtpAddress = f.entry.source, TargetUser = rec.target, key = lower(f.entry.source) }
    else skipped[#skipped + 1] = { source = f.entry.source, reason = tostring(f.problem) } end
  end
  return users, { source = { name = src.name, tenant_id = src.id, domain = src.domain } }, skipped
end

local function list(v) return C.list(v) end
local MAILUSER = { MailUser = true, GuestMailUser = true }       -- what Get-MailUser lists
local MAILBOX = { UserMailbox = true, SharedMailbox = true, RoomMailbox = true, EquipmentMailbox = true }

-- target_index(target) -> {lower address = the target mail user} over every mail user | nil, err
local function target_index(target)
  local idx = {}
  local ok, err = target:xo("Get-MailUser", { ResultSize = "Unlimited" }, {
    select = { "PrimarySmtpAddress", "EmailAddresses", "ExchangeGuid", "ExternalDirectoryObjectId", "Name" },
    each = function(m)
      idx[lower(m.PrimarySmtpAddress or "")] = m
      for _, a in ipairs(list(m.EmailAddresses)) do
        local addr = a:match("^[sS][mM][tT][pP]:(.+)$")
        if addr then idx[lower(addr)] = idx[lower(addr)] or m end
      end
    end })
  if not ok then return nil, err end
  return idx
end

-- lookup(target, addrs, o) -> {lower address = {recipient = the object} | {} (none) | {err}}:
-- the addresses the mail user listing lacks, each looked up on its own.  A mail user made
-- moments ago (prepare-users just ran) is missing from listings and answers "not found" for a
-- while (replication lag): each lookup waits it out, all of them within one shared window of
-- o.settle seconds (the tenant's), so a user is left out only when it is still missing then.
-- Get-Recipient finds a mail user and a mailbox (migrated already) in one call.
local function lookup(target, addrs, o)
  local deadline = t2t.now() + (o.settle or target.settle or 0)
  local res = t2t.parallel(addrs, function(a)
    local r, err = C.get_one(target, "Get-Recipient", { Identity = a },
                             { wait_visible = math.max(0, deadline - t2t.now()) })
    return { recipient = r, err = err }
  end, { concurrency = o.concurrency or 16 })
  local out = {}
  for i, r in ipairs(res) do out[lower(addrs[i])] = r.ok and r.value or { err = r.err } end
  return out
end

-- left(u, tgt, found, J) -> the skipped row of a user whose target is not a mail user (found:
-- what lookup() saw of it; J: the batches file).  Migrated already: the target mailbox has the source's ExchangeGuid (the source's record, else
-- the one the batches file J keeps), or the source no longer reads as a mailbox (the move
-- converted it: no ExchangeGuid in its record) and J placed the user in a batch.
local function left(u, tgt, found, J)
  local r, err = found.recipient, found.err
  local why
  if err then why = "the target could not be read: " .. tostring(err) .. " (run migrate-batch again)"
  elseif not r then why = "no target mail user: run prepare-users"
  elseif MAILBOX[r.RecipientTypeDetails] then
    local rec = J and J:user(tgt)
    local guid = u.ExchangeGuid or (rec and rec.exchange_guid)
    local moved = not u.ExchangeGuid and rec and rec.batch      -- the source no mailbox now, J placed the user
    if moved or (guid and C.guid_eq(r.ExchangeGuid, guid)) then
      return { source = u.PrimarySmtpAddress, target = tgt, ok = true, reason = "migrated already" }
    end
    why = "the target is a mailbox already (licensed before its ExchangeGuid was stamped? see validate-users)"
  else
    why = fmt("the target is a %s, not a mail user", tostring(r.RecipientTypeDetails or "recipient"))
  end
  return { source = u.PrimarySmtpAddress, target = tgt, reason = why }
end

-- entry(u, mu, tgt) -> the user in the plan shape, with what the batches file keeps (rec).
local function entry(u, mu, tgt)
  local names = { u.Name, u.Alias, u.UserPrincipalName, u.PrimarySmtpAddress }
  for _, a in ipairs(list(u.EmailAddresses)) do names[#names + 1] = (a:gsub("^%a+:", "")) end
  local target = mu.PrimarySmtpAddress or tgt
  return {
    target = target, source = u.PrimarySmtpAddress, batch = u.Batch, names = names,
    delegates = { FullAccess = list(u.FullAccess), SendAs = list(u.SendAs), SendOnBehalf = list(u.SendOnBehalf),
                  Calendar = list(u.CalendarDelegates) },
    rec = { target = target, source = u.PrimarySmtpAddress, exchange_guid = u.ExchangeGuid,
            archive_guid = u.ArchiveGuid, legacy_dn = u.LegacyExchangeDN, source_id = u.ExternalDirectoryObjectId,
            target_id = mu.ExternalDirectoryObjectId, name = u.Name,
            delegates = { FullAccess = u.FullAccess, SendAs = u.SendAs, SendOnBehalf = u.SendOnBehalf,
                          Calendar = u.CalendarDelegates } },
  }
end

-- load(ctx, p, run) -> users (plan shape), info, skipped.  Each user: target, source, batch,
-- names, delegates, rec (what the batches file keeps).
function M.load(ctx, p, run)
  local recs, info, skipped = records(ctx, p, run)
  local rules, err = mailuser.rules(run.target, { domains = p.domain_map, tdd = p.target_delivery_domain }, info.source)
  if not rules then ctx:fail("%s", tostring(err)) end
  local idx
  idx, err = target_index(run.target)
  if not idx then ctx:fail("reading the target's mail users: %s", tostring(err)) end
  local mapped, missing = mailuser.map_all(recs, rules), {}
  for _, m in ipairs(mapped) do
    local tgt = m.user.TargetUser or (m.target and m.target.PrimarySmtpAddress)
    m.tgt = tgt
    if tgt and not idx[lower(tgt)] then missing[#missing + 1] = tgt end
  end
  local found = {}
  if #missing > 0 then
    ctx:say("Looking up %d target%s the mail user listing lacks (made moments ago, migrated already, or missing)",
            #missing, #missing == 1 and "" or "s")
    found = lookup(run.target, missing, { concurrency = p.concurrency })
  end
  local users = {}
  for _, m in ipairs(mapped) do
    local u, tgt = m.user, m.tgt
    local mu = tgt and idx[lower(tgt)]
    local f = tgt and found[lower(tgt)]
    if f and f.recipient and MAILUSER[f.recipient.RecipientTypeDetails] then mu = f.recipient end
    if not tgt then
      skipped[#skipped + 1] = { source = u.PrimarySmtpAddress, reason = "no target address: " ..
        tostring(m.problems[1] or "give TargetUser or --domain-map") }
    elseif not mu then
      skipped[#skipped + 1] = left(u, tgt, f or {}, run.journal_in_use)
    else
      users[#users + 1] = entry(u, mu, tgt)
    end
  end
  return users, info, skipped
end

-- from_journal(J) -> the batches file's users in the plan shape (pinned to their batches).
function M.from_journal(J)
  local out = {}
  for _, rec in pairs(J.doc.users) do
    local d = rec.delegates or {}
    out[#out + 1] = { target = rec.target, source = rec.source, batch = rec.batch, names = { rec.name, rec.source },
                      delegates = { FullAccess = list(d.FullAccess), SendAs = list(d.SendAs),
                                    SendOnBehalf = list(d.SendOnBehalf), Calendar = list(d.Calendar) }, rec = rec }
  end
  table.sort(out, function(a, b) return lower(a.target) < lower(b.target) end)
  return out
end

-- placed_by_source(J) -> {lower source address = the record} of the users J placed in a batch.
function M.placed_by_source(J)
  local out = {}
  for _, rec in pairs(J and J.doc.users or {}) do
    if rec.batch and rec.source then out[lower(rec.source)] = rec end
  end
  return out
end

-- merge(J, new, retry) -> all, out: the users to plan -- the batches file's, then those of new
-- it does not know -- and {source, target, reason} for the users batch-fix --leave-out took out
-- of their batch: they stay out (a re-run with the same input does not undo --leave-out) unless
-- retry (--retry-left-out), which puts them back in the plan.
function M.merge(J, new, retry)
  local all, out, known = {}, {}, {}
  for _, u in ipairs(M.from_journal(J)) do
    local rec = u.rec
    known[lower(u.target)] = true
    if rec.left_out and not rec.batch and not retry then
      out[#out + 1] = { source = rec.source, target = rec.target, reason = fmt("left out by batch-fix --leave-out " ..
        "(%s); --retry-left-out puts it in a batch again", tostring(rec.left_out)) }
    else
      if rec.left_out and not rec.batch then           -- retried: planned again, no longer left out
        rec.left_out, rec.left_from, rec.left_exception, rec.left_error = nil, nil, nil, nil
      end
      all[#all + 1] = u
    end
  end
  for _, u in ipairs(new) do
    if not known[lower(u.target)] then all[#all + 1] = u; known[lower(u.target)] = true end
  end
  return all, out
end

return M
