-- migrate-batch: plan the batches, make them, start them (ms-setup-and-prep.md §6, §5.6).
local batch = require "t2t.batch"
local journal = require "t2t.batch.journal"
local S = require "t2t.batch.session"
local users_mod = require "t2t.batch.users"
local plan_mod = require "t2t.batch.plan"

local function say_plan(ctx, result, J, size)
  local n = 0
  for _, b in ipairs(result.batches) do n = n + #b.users end
  ctx:say("Plan: %d users in %d batch%s (at most %d a batch)", n, #result.batches, #result.batches == 1 and "" or "es", size)
  for _, b in ipairs(result.batches) do
    local jb = J:batch(b.name)
    ctx:say("  %-28s %5d users%s", b.name, #b.users, jb and jb.of and (" (retry of " .. jb.of .. ")") or "")
  end
  local lines = plan_mod.describe(result)
  if #lines > 0 then
    ctx:say("Delegates kept together (FullAccess, SendAs, Send on Behalf and calendar permissions work only " ..
            "when both move together):")
    for _, l in ipairs(lines) do ctx:say("  %s", l) end
  end
  if #result.outside > 0 then
    ctx:say("%d permissions name delegates who are not in this migration (they stop working after the move):",
            #result.outside)
    for i, o in ipairs(result.outside) do
      if i > 10 then ctx:say("  ... %d more (batch-report lists them)", #result.outside - 10) break end
      ctx:say("  %s has %s on %s", o.delegate, plan_mod.KIND_NAME[o.kind] or o.kind, o.user.target)
    end
  end
end

-- The batches file's head and options: set on the first run, kept after.
local function head(J, run, p, info, endpoint, tdd)
  local d = J.doc
  d.backend = run.kind
  d.target = d.target or { name = run.target.name, tenant_id = run.target.id, domain = run.target.domain }
  if info.source and info.source.tenant_id then d.source = d.source or info.source end
  d.endpoint, d.tdd = d.endpoint or endpoint, d.tdd or tdd
  local o = d.options
  if next(o) == nil then
    o.size = p.batch_size
    o.start = p.start
    o.start_after = p.start_after and S.parse_time(p.start_after) or nil
    o.complete = p.complete and "auto" or (p.complete_after and S.parse_time(p.complete_after)) or nil
    o.notify = p.notify
  end
end

return runbook {
  name = "migrate-batch",
  description = "Plan migration batches and create and start them (ms-setup-and-prep.md §6).\n\n" ..
    "Users come from the users runbooks: --from FILE (export-users' collection), --prepared FILE (prepare-users\n" ..
    "--report: only the users it prepared), or --csv/--group/--all with --source. The batch CSV holds each user's\n" ..
    "TARGET address (EmailAddress, §6.2), so each user needs its target mail user (prepare-users); users without\n" ..
    "one are left out with the reason. Planning puts at most --batch-size (<= 2,000) users in a batch and keeps\n" ..
    "mailboxes and their delegates together (FullAccess, SendAs, Send on Behalf, calendar: cross-tenant\n" ..
    "permissions do not work), honouring a Batch column where it can and saying whom it moved and which links\n" ..
    "it had to cut. The plan is kept in the batches file (--batches) before anything is made, so a re-run -- or\n" ..
    "a run after a crash -- continues: no batch is made twice, no user ends in two batches.\n\n" ..
    "Start: now (default), --start-after TIME, or --no-start. Completion: manual (default: batch-complete),\n" ..
    "--complete (as soon as synced) or --complete-after TIME (ISO UTC, +2h, +1d). --backend graph uses the\n" ..
    "crossTenantMigrationJob API instead (validate, then migrate; beta).",
  needs = {
    target = { exchange = { "View-Only Recipients", "View-Only Configuration", "Migration" },
               when = { ["backend=graph"] = { graph = { "CrossTenantContentMigration.ReadWrite.All" } } } },
    source = { exchange = { "View-Only Recipients" } },        -- the mailboxes and their delegates
  },
  params = S.params({
    { name = "from", type = "file", help = "users: the collection file export-users wrote (delegates included)" },
    { name = "prepared", type = "file", help = "users: the prepare-users --report file (its ok rows)" },
    { name = "csv", type = "file", help = "users: SourceUser[,TargetUser][,Batch] or EmailAddress (needs --source)" },
    { name = "group", type = "string", help = "users: the mailbox members of this source group (needs --source)" },
    { name = "all", type = "boolean", default = false, help = "users: every mailbox of the source (needs --source)" },
    { name = "domain-map", type = "list", help = "SOURCE=TARGET domains, as prepare-users was given (when there is no TargetUser)" },
    { name = "target-delivery-domain", type = "string", help = "-TargetDeliveryDomain (default: the target's initial domain)" },
    { name = "name", type = "string", default = "t2t", help = "batch names for users without a Batch column: NAME-1, NAME-2, ..." },
    { name = "batch-size", type = "integer", default = 2000, min = 1, max = 2000, help = "users in a batch at most" },
    { name = "keep-batches", type = "boolean", default = false, help = "keep the Batch column as given even where delegates are split (the links are reported)" },
    { name = "endpoint", type = "string", help = "the migration endpoint (default: the target's one cross-tenant endpoint)" },
    { name = "start", type = "boolean", default = true, help = "start the batches now (--no-start: create them stopped)" },
    { name = "start-after", type = "string", help = "start at this time (ISO UTC, +2h, +1d)" },
    { name = "complete", type = "boolean", default = false, help = "complete each batch as soon as it is synced" },
    { name = "complete-after", type = "string", help = "complete at this time (ISO UTC, +2h, +1d); default: manual (batch-complete)" },
    { name = "notify", type = "list", help = "-NotificationEmails: addresses for the service's reports" },
    { name = "concurrency", type = "integer", default = 16, help = "source mailboxes read at once" },
    { name = "retry-left-out", type = "boolean", default = false,
      help = "plan again the users batch-fix --leave-out took out (once their problem is solved, e.g. a hold released)" },
  }, { no_batch = true }),
  run = function(ctx, p)
    if p.complete and p.complete_after then ctx:usage("--complete or --complete-after, not both") end
    for _, k in ipairs { "start_after", "complete_after" } do
      if p[k] then
        local _, terr = S.parse_time(p[k])
        if terr then ctx:usage("--%s: %s", k:gsub("_", "-"), terr) end
      end
    end
    ctx:output(p.batches, "the batches file (--batches)")
    local run = S.open(ctx, p)
    if run.kind == "graph" and p.start_after then ctx:usage("--start-after is for --backend exo (a Graph job starts when it is migrated)") end
    local J = run.journal or journal.new(p.batches)
    S.use_journal(run, J)
    local given = p.from or p.prepared or p.csv or p.group or p.all
    if not given and not run.journal then
      ctx:usage("which users? --from FILE, --prepared FILE, or --csv/--group/--all with --source")
    end
    local new, info, skipped = {}, { source = {} }, {}
    if given then new, info, skipped = users_mod.load(ctx, p, run) end
    local endpoint = S.endpoint(ctx, run, p.endpoint, info.source and info.source.domain)
    local tdd = p.target_delivery_domain or J.doc.tdd or run.target.domain
    local all, kept_out = users_mod.merge(J, new, p.retry_left_out)
    for _, s in ipairs(kept_out) do skipped[#skipped + 1] = s end
    local result = batch.plan(all, { size = p.batch_size, prefix = p.name, keep = p.keep_batches, pinned = J:pinned() })
    head(J, run, p, info, endpoint, tdd)
    for _, b in ipairs(result.batches) do
      if not J:batch(b.name) then J:add_batch { name = b.name, created_by = "plan" } end
    end
    for _, u in ipairs(all) do
      local rec = {}
      for k, v in pairs(u.rec or {}) do rec[k] = v end
      rec.target, rec.batch = u.target, u.planned_batch
      J:set_user(rec)
    end
    say_plan(ctx, result, J, p.batch_size)
    local left_out, migrated = 0, 0
    for _, s in ipairs(skipped) do
      ctx:item(s.source or "?", s.ok or false, s.reason)
      if s.ok then migrated = migrated + 1 else
        left_out = left_out + 1
        if left_out == 1 then ctx:say("Left out (not in any batch):") end
        if left_out <= 20 then ctx:say("  %s: %s", s.source or s.target or "?", s.reason) end
      end
    end
    if left_out > 20 then ctx:say("  ... %d more (--output json lists them all)", left_out - 20) end
    if not ctx.opts.plan then
      local ok, err = J:save()
      if not ok then ctx:fail("--batches %s: %s", p.batches, tostring(err)) end
    end
    ctx:say("\n%s %d batch%s (endpoint %s, target delivery domain %s, backend %s)%s",
            ctx.opts.plan and "Would make or update" or "Making or updating", #result.batches,
            #result.batches == 1 and "" or "es", endpoint, tdd, run.kind,
            ctx.opts.plan and "   [plan: no changes]" or "")
    local res, err = batch.converge(run.backend, J)
    if not res then ctx:fail("%s", tostring(err)) end
    local created, added = 0, 0
    for _, r in ipairs(res) do
      if r.created then created = created + 1 end
      added = added + r.added
      local what = r.created and ("created with " .. r.added .. " users") or r.added > 0 and ("+" .. r.added .. " users")
                   or "unchanged"
      ctx:say("  %-28s %s%s%s", r.name, what, r.started and ", started" or "",
              #r.elsewhere > 0 and (", " .. #r.elsewhere .. " moving in another batch") or "")
      for _, x in ipairs(r.elsewhere) do ctx:item(x.address, true, "moving in batch " .. x.batch) end
    end
    for _, u in ipairs(new) do
      if u.planned_batch then ctx:item(u.target, true, "batch " .. u.planned_batch) end
    end
    if run.journal == nil and not ctx.opts.plan then ctx:summary("batches file", p.batches) end
    ctx:summary("batches", #result.batches)
    ctx:summary("batches created", created)
    ctx:summary("users added", added)
    if migrated > 0 then ctx:summary("users migrated already", migrated) end
    ctx:summary("users left out", left_out)
    ctx:say("\nNext: t2t run batch-status --watch   (then batch-fix for failures, batch-complete when synced)")
    return { batches = res, skipped = skipped, moved = #result.moved, cut = #result.cut }
  end,
}
