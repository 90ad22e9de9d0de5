-- t2t.batch.users: the users migrate-batch is given -- the users issue's inputs (a CSV of
-- SourceUser[,TargetUser][,Batch] or EmailAddress, a group, every mailbox, the export-users
-- collection file) or the prepare-users report -- made into what planning needs: the TARGET
-- address (the batch CSV's EmailAddress, §6.2), the source mailbox, the wanted batch, and the
-- delegates that tie users together (§5.6).  Users without a target mail user are left out,
-- each with the reason and what to run.
local mailuser = require "t2t.mailuser"
local MS = require "t2t.mailuser.session"
local C = require "t2t.mailuser.common"

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
  for _, f in ipairs(failures or {}) do skipped[#skipped + 1] = { source = f.entry.source, reason = tostring(f.problem) } end
  return users, { source = { name = src.name, tenant_id = src.id, domain = src.domain } }, skipped
end

local function list(v) return C.list(v) end

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

-- load(ctx, p, run) -> users (plan shape), info, skipped.  Each user: target, source, batch,
-- names, delegates, rec (what the batches file keeps).
function M.load(ctx, p, run)
  local recs, info, skipped = records(ctx, p, run)
  local rules, err = mailuser.rules(run.target, { domains = p.domain_map, tdd = p.target_delivery_domain }, info.source)
  if not rules then ctx:fail("%s", tostring(err)) end
  local idx
  idx, err = target_index(run.target)
  if not idx then ctx:fail("reading the target's mail users: %s", tostring(err)) end
  local users = {}
  for _, m in ipairs(mailuser.map_all(recs, rules)) do
    local u = m.user
    local tgt = u.TargetUser or (m.target and m.target.PrimarySmtpAddress)
    local mu = tgt and idx[lower(tgt)]
    if not tgt then
      skipped[#skipped + 1] = { source = u.PrimarySmtpAddress, reason = "no target address: " ..
        tostring(m.problems[1] or "give TargetUser or --domain-map") }
    elseif not mu then
      local mbx = C.get_one(run.target, "Get-Mailbox", { Identity = tgt })
      if mbx and C.guid_eq(mbx.ExchangeGuid, u.ExchangeGuid) then
        skipped[#skipped + 1] = { source = u.PrimarySmtpAddress, target = tgt, ok = true, reason = "migrated already" }
      else
        skipped[#skipped + 1] = { source = u.PrimarySmtpAddress, target = tgt, reason = mbx and
          "the target is a mailbox already (licensed before its ExchangeGuid was stamped? see validate-users)" or
          "no target mail user: run prepare-users" }
      end
    else
      local names = { u.Name, u.Alias, u.UserPrincipalName, u.PrimarySmtpAddress }
      for _, a in ipairs(list(u.EmailAddresses)) do names[#names + 1] = (a:gsub("^%a+:", "")) end
      users[#users + 1] = {
        target = mu.PrimarySmtpAddress or tgt, source = u.PrimarySmtpAddress, batch = u.Batch, names = names,
        delegates = { FullAccess = list(u.FullAccess), SendAs = list(u.SendAs), SendOnBehalf = list(u.SendOnBehalf),
                      Calendar = list(u.CalendarDelegates) },
        rec = { target = mu.PrimarySmtpAddress or tgt, source = u.PrimarySmtpAddress, exchange_guid = u.ExchangeGuid,
                archive_guid = u.ArchiveGuid, legacy_dn = u.LegacyExchangeDN, source_id = u.ExternalDirectoryObjectId,
                target_id = mu.ExternalDirectoryObjectId, name = u.Name,
                delegates = { FullAccess = u.FullAccess, SendAs = u.SendAs, SendOnBehalf = u.SendOnBehalf,
                              Calendar = u.CalendarDelegates } },
      }
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

return M
