-- t2t.batch.fix: apply the documented fix of each failed user (ms-setup-and-prep.md §8) where it
-- can be automated, through the plan, then resume the batches or resubmit the users in new ones:
-- MissingExchangeGuid -> Set-MailUser -ExchangeGuid; NotAcceptedDomain -> the foreign proxies
-- removed; not in scope -> the source mailbox into the scope group; duplicate in another batch,
-- aux archive provisioned, not in the expected database, already being moved -> remove and a new
-- batch; no licence -> the cross-tenant licence; a demoted archive and skipped items only with a
-- flag (one fix is irreversible, the other a judgement).  Everything else is explained, not done.
local fixes = require "t2t.batch.fixes"
local status = require "t2t.batch.status"
local batch = require "t2t.batch"

local M = {}
local lower, fmt = string.lower, string.format

-- A fix context: {target, source?, backend, journal, opts, plan_mode, cache = {}}.

local function is_zero(g) return g == nil or g == "" or lower(g) == "00000000-0000-0000-0000-000000000000" end

-- record(fx, u) -> what is known of the user's source mailbox (the batches file, else the source
-- tenant through the target mail user's ExternalEmailAddress) | nil, why.
function M.record(fx, u)
  local rec = fx.journal and fx.journal:user(u.address)
  if rec and rec.exchange_guid then return rec end
  if not fx.source then return rec, "no source profile and no batches file entry" end
  local mu = fx.target:xo("Get-MailUser", { Identity = u.address })
  local ext = mu and mu[1] and tostring(mu[1].ExternalEmailAddress or ""):gsub("^%a+:", "")
  local m = ext and ext ~= "" and fx.source:xo("Get-Mailbox", { Identity = ext })
  m = m and m[1]
  if not m then return rec, "the source mailbox was not found" end
  rec = rec or {}
  rec.target, rec.source = u.address, m.PrimarySmtpAddress
  rec.exchange_guid, rec.archive_guid = m.ExchangeGuid, not is_zero(m.ArchiveGuid) and m.ArchiveGuid or nil
  rec.legacy_dn, rec.name = m.LegacyExchangeDN, m.Name
  return rec
end

local function set_mailuser(fx, u, params, what, find)
  local t = fx.target
  params.Identity = u.address
  local after = {}
  for k, v in pairs(params) do if k ~= "Identity" then after[k] = v end end
  return t:checked({ kind = "update", target = fmt("mail user %s", u.address), tenant = t.name,
    operation = "batch_fix_" .. what, before = { [next(after)] = "(current)" }, after = after,
    apply = function() return t:xo("Set-MailUser", params) end }, find)
end

local function mailuser(fx, addr)
  local l = fx.target:xo("Get-MailUser", { Identity = addr })
  return l and l[1]
end

local ACT = {}

function ACT.guid(fx, u, rec)
  if not rec or not rec.exchange_guid then return "manual", "the source mailbox's ExchangeGuid is not known: pass --source or the batches file" end
  local p = { ExchangeGuid = rec.exchange_guid }
  if rec.archive_guid then p.ArchiveGuid = rec.archive_guid end
  local _, err = set_mailuser(fx, u, p, "guid", function()
    local mu = mailuser(fx, u.address)
    return mu and lower(mu.ExchangeGuid or "") == lower(rec.exchange_guid) or nil
  end)
  if err == "planned" then return "planned", "Set-MailUser -ExchangeGuid " .. rec.exchange_guid end
  if err then
    if tostring(err):find("PermanentlyClearPreviousMailboxInfo", 1, true) or tostring(err):lower():find("previous", 1, true) then
      return "manual", "the target had a mailbox before: t2t run prepare-users --clear-previous-mailbox (IRREVERSIBLE)"
    end
    return nil, err
  end
  return "resume", "ExchangeGuid stamped"
end

function ACT.archive_guid(fx, u, rec)
  if not rec or not rec.archive_guid then return "manual", "the source archive's GUID is not known" end
  local _, err = set_mailuser(fx, u, { ArchiveGuid = rec.archive_guid }, "archive_guid", function()
    local mu = mailuser(fx, u.address)
    return mu and lower(mu.ArchiveGuid or "") == lower(rec.archive_guid) or nil
  end)
  if err == "planned" then return "planned", "Set-MailUser -ArchiveGuid" end
  if err then return nil, err end
  return "resume", "ArchiveGuid stamped"
end

function ACT.x500(fx, u, rec)
  if not rec or not rec.legacy_dn then return "manual", "the source's LegacyExchangeDN is not known" end
  local x = "x500:" .. rec.legacy_dn
  local _, err = set_mailuser(fx, u, { EmailAddresses = { add = { x } } }, "x500", function()
    local mu = mailuser(fx, u.address)
    for _, a in ipairs(mu and mu.EmailAddresses or {}) do if lower(a) == lower(x) then return true end end
  end)
  if err == "planned" then return "planned", "add " .. x end
  if err then return nil, err end
  return "resume", "X500 added"
end

function ACT.proxies(fx, u)
  local mu = mailuser(fx, u.address)
  if not mu then return "manual", "the target mail user was not found" end
  if not fx.accepted then
    local acc, err = require("t2t.mailuser").accepted_domains(fx.target)
    if not acc then return nil, err end
    fx.accepted = acc
  end
  local drop = {}
  for _, a in ipairs(mu.EmailAddresses or {}) do
    local addr = a:match("^[sS][mM][tT][pP]:(.+)$")
    local dom = addr and addr:match("@(.+)$")
    if dom and not fx.accepted[lower(dom)] then drop[#drop + 1] = a end
  end
  if #drop == 0 then return "resume", "no foreign proxy left" end
  local _, err = set_mailuser(fx, u, { EmailAddresses = { remove = drop } }, "proxies", function()
    local again = mailuser(fx, u.address)
    for _, a in ipairs(again and again.EmailAddresses or {}) do
      for _, d in ipairs(drop) do if lower(a) == lower(d) then return nil end end
    end
    return again and true or nil
  end)
  if err == "planned" then return "planned", "remove " .. table.concat(drop, ", ") end
  if err then return nil, err end
  return "resume", "removed " .. table.concat(drop, ", ")
end

local function scope(fx, rec)
  if not fx.source then
    return "manual", fmt("the source admin adds %s to the scope group (t2t run export-users --add-to-scope, " ..
      "or Add-DistributionGroupMember)", tostring(rec and rec.source or "the source mailbox"))
  end
  if not rec or not rec.source then return "manual", "the source mailbox is not known" end
  local mailuser_mod = require "t2t.mailuser"
  if not fx.scope then
    local sc, why = mailuser_mod.scope(fx.source)
    if not sc then return nil, why end
    fx.scope = sc
  end
  local st, err = mailuser_mod.add_to_scope(fx.source, { PrimarySmtpAddress = rec.source, ExchangeGuid = rec.exchange_guid,
                                                          Name = rec.name }, fx.scope)
  if not st then return nil, err end
  return st == "planned" and "planned" or "ok", st == "member" and "already in the scope group" or "added to the scope group"
end

function ACT.scope(fx, _u, rec)
  local st, msg = scope(fx, rec)
  if st == "ok" then return "resume", msg end
  return st, msg
end

function ACT.scope_resubmit(fx, _u, rec)
  local st, msg = scope(fx, rec)
  if st == "ok" then return "resubmit", msg .. "; a new batch" end
  return st, msg
end

function ACT.resubmit() return "resubmit", "removed, into a new batch" end

-- The user is in another batch too: where it is moving, our failed entry just goes; where it is
-- not (failed, stopped, never started), that entry goes and the user moves in a new batch.
function ACT.duplicate(fx, u)
  local members = fx.members or {}
  local others = {}
  for _, e in ipairs(members[lower(u.address)] or {}) do
    if (e.Guid or "") ~= (u.id or "") and lower(e.BatchId or "") ~= lower(u.batch or "") then others[#others + 1] = e end
  end
  for _, e in ipairs(others) do
    if batch.active(e) then
      local _, err = fx.backend:remove_user(u.raw or u)
      if err and err ~= "planned" then return nil, err end
      local rec = fx.journal and fx.journal:user(u.address)
      if rec then rec.batch = e.BatchId end
      return err == "planned" and "planned" or "ok", fmt("it is moving in batch %s: left there", e.BatchId)
    end
  end
  for _, e in ipairs(others) do
    local _, err = fx.backend:remove_user(e)
    if err and err ~= "planned" then return nil, err end
  end
  return "resubmit", #others > 0 and fmt("taken out of batch %s; a new batch", others[1].BatchId) or "a new batch"
end

function ACT.license(fx, u, rec)
  if not rec or not rec.exchange_guid then return "manual", "the source mailbox is not known (the licence waits for its ExchangeGuid)" end
  local m = { user = { ExchangeGuid = rec.exchange_guid, UsageLocation = fx.opts.usage_location },
              target = { PrimarySmtpAddress = u.address, UserPrincipalName = u.address } }
  local st, err = require("t2t.mailuser").license(fx.target, m, fx.opts.license or "ctudm",
                                                   { usage_location = fx.opts.usage_location })
  if not st then return nil, err end
  if st == "planned" then return "planned", "licence " .. (fx.opts.license or "ctudm") end
  return "resume", st == "unchanged" and "already licensed" or "licensed"
end

function ACT.demoted(fx, u, rec)
  local o = fx.opts
  if not (o.remove_disabled_archive or o.enable_archive) then
    return "flag", "needs --remove-disabled-archive (IRREVERSIBLE: the disabled archive's content is gone) or " ..
      "--enable-archive (the archive comes back and moves too)"
  end
  if not fx.source or not rec or not rec.source then return "manual", "needs the source profile (--source)" end
  local s = fx.source
  if o.remove_disabled_archive then
    local _, err = s:checked({ kind = "action", target = fmt("disabled archive of %s", rec.source), tenant = s.name,
      operation = "batch_fix_remove_disabled_archive", note = "IRREVERSIBLE: the demoted archive cannot be recovered",
      apply = function() return s:xo("Set-Mailbox", { Identity = rec.source, RemoveDisabledArchive = true }) end },
      function()
        local m = s:xo("Get-Mailbox", { Identity = rec.source })
        return m and m[1] and is_zero(m[1].DisabledArchiveGuid) or nil
      end)
    if err == "planned" then return "planned", "Set-Mailbox -RemoveDisabledArchive" end
    if err then return nil, err end
    return "resume", "disabled archive removed"
  end
  local _, err = s:checked({ kind = "action", target = fmt("archive of %s", rec.source), tenant = s.name,
    operation = "batch_fix_enable_archive",
    apply = function() return s:xo("Enable-Mailbox", { Identity = rec.source, Archive = true }) end },
    function()
      local m = s:xo("Get-Mailbox", { Identity = rec.source })
      return m and m[1] and not is_zero(m[1].ArchiveGuid) and m[1] or nil
    end)
  if err == "planned" then return "planned", "Enable-Mailbox -Archive, then the target's ArchiveGuid" end
  if err then return nil, err end
  local m = s:xo("Get-Mailbox", { Identity = rec.source })
  rec.archive_guid = m and m[1] and m[1].ArchiveGuid
  local st, msg = ACT.archive_guid(fx, u, rec)
  if st ~= "resume" then return st, msg end
  return "resume", "archive enabled and its GUID stamped on the target"
end

-- Skipped items: approved with --approve-skipped, or within --bad-item-limit/--large-item-limit
-- (Exchange Online's batches take no such limits any more: the Data Consistency Score asks for
-- approval instead, so t2t applies the limits when it approves).
function ACT.approve(fx, u)
  local o = fx.opts
  if not (o.approve_skipped or o.bad_item_limit or o.large_item_limit) then
    return "flag", "needs --approve-skipped (or --bad-item-limit N / --large-item-limit N)"
  end
  if not o.approve_skipped then
    local st = fx.backend:stats(u.address)
    if st then status.merge(u, st) end
    local bad, large = u.bad or 0, u.large or 0
    if bad > (o.bad_item_limit or 0) or large > (o.large_item_limit or 0) then
      return "manual", fmt("%d corrupt and %d large items were skipped, over the limits (%d, %d): review them " ..
        "(Get-MigrationUserStatistics -IncludeSkippedItems), then --approve-skipped", bad, large,
        o.bad_item_limit or 0, o.large_item_limit or 0)
    end
  end
  local _, err = fx.backend:approve(u.raw or u)
  if err == "planned" then return "planned", "approve the skipped items" end
  if err then return nil, err end
  return "ok", fmt("%d skipped items approved", u.skipped or 0)
end

function ACT.wait() return "wait", "stalled: the service resumes it by itself" end

-- approve(fx, u) -> result, detail: the skipped items of one user (batch-complete uses it).
M.approve = ACT.approve
function ACT.manual() return "manual", nil end

-- key(u) -> the user's failure as the report groups it (t2t.batch.fixes.key; the state when not failed).
function M.key(u)
  if u.state ~= "Failed" then return u.state end
  return fixes.key(u.exception, u.error) or "UnknownFailure"
end

-- one(fx, u) -> {user, exception, info, result, detail}: the fix of one failed user.
function M.one(fx, u)
  local exn = u.state == "Failed" and u.exception or u.state
  local info = fixes.info(exn, u.error)
  local rec, why = M.record(fx, u)
  local act = ACT[info.action] or ACT.manual
  local ok, res, detail = pcall(act, fx, u, rec)
  if not ok then res, detail = nil, res end
  if res == nil then
    return { user = u, info = info, result = "failed", detail = tostring(detail) .. (why and (" (" .. why .. ")") or "") }
  end
  if res == "manual" then detail = detail or info.fix end
  return { user = u, info = info, result = res, detail = detail, rec = rec }
end

-- leave_out(fx, r): a user nobody can fix now leaves its batch (--leave-out), so the others can
-- go on (a Graph job that failed validation moves nobody until then); the batches file keeps it
-- as left out, with the reason.
function M.leave_out(fx, r)
  local _, err = fx.backend:remove_user(r.user.raw or r.user)
  if err and err ~= "planned" then r.result, r.detail = "failed", "leave out: " .. tostring(err) return end
  local rec = fx.journal and fx.journal:user(r.user.address)
  if rec and err ~= "planned" then
    rec.left_from, rec.left_exception, rec.batch, rec.left_out = rec.batch, M.key(r.user), nil, r.detail or r.info.cause
    rec.left_error = r.user.error
  end
  r.result = err == "planned" and "planned" or "left out"
end

-- run(fx, snaps) -> results: every failed, needing-approval or stalled user of the snapshots.
-- Users to resume are resumed per batch; users to resubmit go, per batch, into one new batch.
function M.run(fx, snaps)
  local results, resume, resubmit = {}, {}, {}
  for _, snap in ipairs(snaps) do
    for _, u in ipairs(snap.users) do
      if u.state == "Failed" or u.state == "NeedsApproval" or u.state == "Stalled" then
        local r = M.one(fx, u)
        results[#results + 1] = r
        if (r.result == "manual" or r.result == "flag") and fx.opts.leave_out and u.state == "Failed" then
          M.leave_out(fx, r)
          -- the others go on: a batch still syncing is started again; a completed one (with
          -- errors) has nothing left to start (Start-MigrationBatch would fail on it)
          if r.result == "left out" and not tostring((snap.batch or {}).status or ""):lower():match("^completed") then
            resume[u.batch] = true
          end
        end
        if r.result == "resume" then resume[u.batch] = true
        elseif r.result == "resubmit" then
          resubmit[u.batch] = resubmit[u.batch] or {}
          table.insert(resubmit[u.batch], u)
        end
      end
    end
  end
  for name in pairs(resume) do
    local _, err = fx.backend:resume(name)
    if err and err ~= "planned" then
      for _, r in ipairs(results) do
        if r.user.batch == name and r.result == "resume" then r.result, r.detail = "failed", "resume: " .. tostring(err) end
      end
    end
  end
  for name, list in pairs(resubmit) do
    local new, err = batch.resubmit(fx.backend, fx.journal, list, { plan_mode = fx.plan_mode })
    for _, r in ipairs(results) do
      if r.user.batch == name and r.result == "resubmit" then
        if new then r.to = new else r.result, r.detail = "failed", "resubmit: " .. tostring(err) end
      end
    end
  end
  return results
end

return M
