-- batch-fix: apply the documented fix of each failed user (ms-setup-and-prep.md §8) and resume.
local batch = require "t2t.batch"
local journal = require "t2t.batch.journal"
local S = require "t2t.batch.session"
local fix = require "t2t.batch.fix"

local RESULT = { resume = "fixed, resumed", resubmit = "in a new batch", ok = "done", planned = "planned",
                 wait = "waiting", flag = "needs a flag", manual = "by hand", failed = "failed", ["left out"] = "left out" }
local OK = { resume = true, resubmit = true, ok = true, planned = true, wait = true, ["left out"] = true }

local function cut(s, n)
  s = tostring(s or "")
  return #s <= n and s or s:sub(1, n - 3) .. "..."
end

return runbook {
  name = "batch-fix",
  description = "Apply the documented fix for each failed user, then resume (ms-setup-and-prep.md §8).\n\n" ..
    "MissingExchangeGuidException -> Set-MailUser -ExchangeGuid (the source's); NotAcceptedDomainException -> the\n" ..
    "proxies outside the accepted domains removed; MailboxNotInCrossTenantMigrationScopeException -> the source\n" ..
    "mailbox added to the scope group (needs --source); CrossTenantMigrationWithoutLicensePermanentException ->\n" ..
    "the cross-tenant licence on the target; the batch is then resumed. UserDuplicateInOtherBatchException,\n" ..
    "AuxArchiveNotFoundInTargetRecipient, SourceAuxArchiveIsProvisionedDuringCrossTenantMove,\n" ..
    "MailboxIsNotInExpectedDB and SourceMailboxAlreadyBeingMoved -> the user is removed and put in a new batch\n" ..
    "(<batch>-retryN; the batches file records it first, so a crash cannot lose the user).\n" ..
    "UserAlreadyHasDemotedArchiveException only with --remove-disabled-archive (IRREVERSIBLE) or\n" ..
    "--enable-archive; skipped items only with --approve-skipped or within --bad-item-limit/--large-item-limit.\n" ..
    "Holds and the rest are explained, never changed; --leave-out takes those users out of their batches so the\n" ..
    "others go on (a Graph job moves nobody while one user fails validation). --plan shows every change first.\n" ..
    "Exits 3 while some users still need a hand.",
  needs = {
    target = { exchange = { "Migration", "Mail Recipients", "View-Only Configuration" },
               graph = { "User.Read.All" },
               -- the cross-tenant licence, for a user who fails without one (reported when missing)
               optional = { graph = { "LicenseAssignment.ReadWrite.All" } },
               when = { ["backend=graph"] = { graph = { "CrossTenantContentMigration.ReadWrite.All" } }, ["bad-item-limit"] = { exchange = { "Move Mailboxes" } },
                        ["large-item-limit"] = { exchange = { "Move Mailboxes" } },
                        ["usage-location"] = { graph = { "User.ReadWrite.All" } } } },
    source = { exchange = { "Distribution Groups", "View-Only Configuration" },   -- the scope group
               when = { ["remove-disabled-archive"] = { exchange = { "Mail Recipients" } },
                        ["enable-archive"] = { exchange = { "Mail Recipients" } } } },
  },
  params = S.params({
    { name = "remove-disabled-archive", type = "boolean", default = false,
      help = "fix UserAlreadyHasDemotedArchiveException with Set-Mailbox -RemoveDisabledArchive (IRREVERSIBLE)" },
    { name = "enable-archive", type = "boolean", default = false,
      help = "fix it with Enable-Mailbox -Archive and the target's ArchiveGuid instead (the archive moves too)" },
    { name = "approve-skipped", type = "boolean", default = false, help = "approve every user's skipped items" },
    { name = "bad-item-limit", type = "integer", min = 0, help = "approve users with at most this many corrupt items skipped" },
    { name = "large-item-limit", type = "integer", min = 0, help = "... and at most this many large items skipped" },
    { name = "license", type = "string", default = "ctudm", help = "the licence for CrossTenantMigrationWithoutLicense (ctudm, a skuPartNumber or skuId)" },
    { name = "usage-location", type = "string", help = "country code for users the licence needs one for" },
    { name = "leave-out", type = "boolean", default = false,
      help = "take the users nobody can fix now (holds ...) out of their batches, so the others go on" },
  }),
  run = function(ctx, p)
    if p.remove_disabled_archive and p.enable_archive then ctx:usage("--remove-disabled-archive or --enable-archive, not both") end
    ctx:output(p.batches, "the batches file (--batches)")
    local run = S.open(ctx, p)
    local J = run.journal or journal.new(p.batches, { backend = run.kind,
      target = { name = run.target.name, tenant_id = run.target.id, domain = run.target.domain } })
    S.use_journal(run, J)
    local names = S.names(ctx, p, run)
    if run.journal then
      local only = {}
      for _, n in ipairs(names) do only[n:lower()] = true end
      local res, err = batch.converge(run.backend, J, { only = only })
      if not res then ctx:fail("%s", tostring(err)) end
    end
    local snaps = S.snapshots(ctx, run, names, { detail = 0 })
    local members, merr = batch.members(run.backend)
    if not members then ctx:fail("reading the migration users: %s", tostring(merr)) end
    local fx = { target = run.target, source = run.source, backend = run.backend, journal = J, members = members,
                 plan_mode = ctx.opts.plan, opts = p }
    local results = fix.run(fx, snaps)
    if #results == 0 then ctx:say("Nothing to fix: no user has failed, needs approval or is stalled in %s.", table.concat(names, ", ")) end
    if #results > 0 then
      ctx:say("\n%-34s %-14s %-44s %-15s %s", "user", "batch", "exception", "result", "detail")
    end
    for _, r in ipairs(results) do
      local u = r.user
      ctx:say("%-34s %-14s %-44s %-15s %s%s", cut(u.address, 34), cut(u.batch, 14), cut(r.info.exception or u.state, 44),
              RESULT[r.result] or r.result, r.detail or "", r.to and (" -> " .. r.to) or "")
      ctx:item(u.address, OK[r.result] or false, (r.info.exception or u.state) .. ": " .. tostring(r.detail or r.result))
      if not ctx.opts.plan and r.result ~= "wait" then
        J:record { user = u.address, batch = u.batch, exception = fix.key(u), action = r.info.action,
                   result = r.result, detail = r.detail, to = r.to }
      end
    end
    if not ctx.opts.plan and #results > 0 then
      local ok, err = J:save()
      if not ok then ctx:fail("--batches %s: %s", p.batches, tostring(err)) end
    end
    local n = {}
    for _, r in ipairs(results) do n[r.result] = (n[r.result] or 0) + 1 end
    for _, k in ipairs { "resume", "resubmit", "ok", "planned", "wait", "left out", "flag", "manual", "failed" } do
      if n[k] then ctx:summary("users " .. RESULT[k], n[k]) end
    end
    if #results > 0 then ctx:say("\nNext: t2t run batch-status --watch") end
    return { results = (function()
      local out = {}
      for _, r in ipairs(results) do
        out[#out + 1] = { user = r.user.address, batch = r.user.batch, exception = r.info.exception or r.user.state,
                          result = r.result, detail = r.detail, to = r.to }
      end
      return out
    end)() }
  end,
}
