-- t2t.mailuser.session: what export-users, prepare-users and validate-users share — opening the
-- tenants (a profile, or the simulator's seeded pair under --sim), choosing the users (a CSV, a
-- group, every mailbox, or the collection file of a source admin), --only-failed, and the result:
-- one item per user, the table, the --report file.
local session = require "t2t.tenant.session"
local mailuser = require "t2t.mailuser"

local M = {}
local lower, fmt = string.lower, string.format

M.must = session.must

-- The parameters prepare-users and validate-users share (a fresh list each call: runbook
-- declarations are normalised in place); verb names the run ("re-run", "re-check").
function M.params(verb, extra)
  local l = {
    { name = "target", type = "string", help = "profile of the target tenant (default with --sim: fabrikam)" },
    { name = "source", type = "string", help = "profile of the source tenant (default with --sim and no --from: contoso)" },
    { name = "from", type = "file", help = "collection file from export-users (no source access needed)" },
    { name = "csv", type = "file", help = "users: SourceUser[,TargetUser][,Batch] (as CSS-val) or EmailAddress" },
    { name = "group", type = "string", help = "users: the mailbox members of this source group" },
    { name = "all", type = "boolean", default = false, help = "users: every user, shared, room and equipment mailbox" },
    { name = "domain-map", type = "list", help = "SOURCE=TARGET domains, e.g. contoso.com=fabrikam.com (several; * for any)" },
    { name = "target-delivery-domain", type = "string", help = "domain each target needs a proxy in (default: the target's initial domain)" },
    { name = "scope-group", type = "string", help = "source scope group (default: the organization relationship's)" },
  }
  for _, x in ipairs(extra) do l[#l + 1] = x end
  for _, x in ipairs {
    { name = "report", type = "string", help = "write one row per user here (.csv or .json)" },
    { name = "only-failed", type = "boolean", default = false, help = verb .. " only the users --report lists as not done" },
    { name = "concurrency", type = "integer", default = 16, help = "users worked on at once (each tenant's Exchange calls are limited apart)" },
  } do l[#l + 1] = x end
  return l
end

-- load(ctx, p, depth) -> run = {target, source?, users (a users source), info, failures,
-- scope?, kept, rules}:
-- the report checked, --only-failed read, the tenants opened, the users read (from --from, or
-- the source at `depth`), the mapping rules made.
function M.load(ctx, p, depth)
  ctx:output(p.report, "the report (--report)")
  local run = {}
  local redo
  redo, run.kept = M.only_failed(ctx, p)
  p.only_failed_set = redo
  run.target = M.open(ctx, "target", p.target, true)
  run.source = (p.source or not p.from) and M.open(ctx, "source", p.source, not p.from) or nil
  if p.from then
    run.users, run.info = M.from_file(ctx, p.from, redo)
  else
    local spool = ctx:tempdir() .. "/users.jsonl"        -- the users, one line each, not in memory
    run.failures, run.info, run.scope = M.export(ctx, p, run.source, depth, spool)
    run.users = mailuser.file_users(spool)
  end
  local err
  run.rules, err = mailuser.rules(run.target, { domains = p.domain_map, tdd = p.target_delivery_domain },
                                  run.info.source)
  if not run.rules then ctx:fail("%s", tostring(err)) end
  return run
end

-- open(ctx, role, name, required) -> tenant | nil (not given); a connection error ends the run.
function M.open(ctx, role, name, required)
  local t, err = session.open(ctx, role, name)
  if err then
    local stop = type(err) == "table" and err.code == "Profile" and ctx.usage or ctx.fail   -- unknown profile: exit 2
    stop(ctx, "%s tenant: %s", role, tostring(err))
  end
  if not t and required then
    ctx:usage("which %s tenant? pass --%s PROFILE (or --sim)", role, role)
  end
  return t
end

-- The list (--csv): bad rows are reported with their line, the others go on.
function M.read_list(ctx, path)
  local entries, rep = mailuser.read_list(path)
  if not entries then ctx:fail("--csv %s", tostring(rep)) end
  for _, line in ipairs(mailuser.describe_list(rep)) do ctx.log.warn("%s: %s", path, line) end
  for _, e in ipairs(rep.errors) do ctx:item(fmt("%s line %d", path, e.line), false, e.reason) end
  if #rep.extra_columns > 0 then
    ctx.log.info("%s: columns ignored: %s", path, table.concat(rep.extra_columns, ", "))
  end
  if #entries == 0 and #rep.errors > 0 and rep.errors[1].line == 1 then ctx:fail("%s", rep.errors[1].reason) end
  return entries, rep
end

-- selector(ctx, p) -> {entries | group | all} from --csv / --group / --all (exactly one).
function M.selector(ctx, p)
  local n = (p.csv and 1 or 0) + (p.group and 1 or 0) + (p.all and 1 or 0)
  if n ~= 1 then
    ctx:usage("which users? give exactly one of --csv FILE (SourceUser,TargetUser or EmailAddress), --group NAME, --all")
  end
  if p.csv then return { entries = M.read_list(ctx, p.csv), csv = p.csv } end
  if p.group then return { group = p.group } end
  return { all = true }
end

-- export(ctx, p, source, depth, out, o) -> failures, info, scope: the source's users read and
-- written, as they arrive, to the collection file `out` (export-users' --out, or a spool in the
-- run's temporary directory); none is held in memory.  o.also(u, scope): more work per user,
-- run concurrently with the reads; o.each(u): called for each user before it is written;
-- o.need_scope: no scope group ends the run (before anything is read).
function M.export(ctx, p, source, depth, out, o)
  o = o or {}
  local sel = M.selector(ctx, p)
  local scope, why = mailuser.scope(source, p.scope_group)
  if not scope then
    if p.scope_group or o.need_scope then ctx:fail("scope group: %s", tostring(why)) end
    ctx.log.warn("%s: scope membership not checked: %s", source.name, tostring(why))
  end
  local only = p.only_failed_set
  if sel.entries and only then
    local keep = {}
    for _, e in ipairs(sel.entries) do if only[lower(e.source)] then keep[#keep + 1] = e end end
    sel.entries = keep
  end
  local info = { source = { tenant_id = source.id, domain = source.domain, name = source.name },
                 depth = depth, scope_group = scope and scope.name or nil, scope_known = scope ~= nil }
  local w, werr = mailuser.collection_writer(out, info)
  if not w then ctx:fail("%s", tostring(werr)) end
  local bar = sel.entries and M.progress(ctx, "Reading mailboxes", #sel.entries)
  local count, wfail = 0, nil
  local _, failures = mailuser.export(source, sel, { depth = depth, scope = scope or false, concurrency = p.concurrency,
    on_progress = function(done)
      if bar then bar:update(done) elseif done % 5000 < mailuser.WINDOW then ctx.log.info("  %d mailboxes read", done) end
    end,
    also = o.also and function(u) o.also(u, scope) end,
    each = function(u)
      if wfail or (only and not sel.entries and not only[mailuser.key(u)]) then return end
      if o.each then o.each(u) end
      local ok, err = w:add(u)
      if not ok then wfail = err return end
      count = count + 1
    end })
  if bar then bar:finish() end
  if type(failures) ~= "table" then w:abort() ctx:fail("reading the source mailboxes: %s", tostring(failures)) end
  if wfail then w:abort() ctx:fail("%s", tostring(wfail)) end
  local ok, cerr = w:close()
  if not ok then ctx:fail("%s", tostring(cerr)) end
  info.count = count
  return failures, info, scope
end

-- from_file(ctx, path, only) -> users source, info: a collection file written by export-users
-- (only: the set of user keys to keep, for --only-failed).
function M.from_file(ctx, path, only)
  local info, nxt = mailuser.open_collection(path)
  if not info then ctx:fail("--from %s", tostring(nxt)) end
  ctx:say("Source %s (%s) from %s, exported %s%s", tostring(info.source and info.source.name),
          tostring(info.source and info.source.tenant_id), path, tostring(info.created),
          info.depth == "full" and "" or " (identity attributes only)")
  return mailuser.file_users(path, only and function(u) return only[mailuser.key(u)] end), info
end

-- only_failed(ctx, p) -> the set of users to re-run and the done rows to keep (from --report).
function M.only_failed(ctx, p)
  if not p.only_failed then return nil, {} end
  if not p.report then ctx:fail("--only-failed re-runs the users a previous --report FILE lists as not done: pass --report") end
  local rows, err = mailuser.report.read(p.report)
  if not rows then
    ctx:fail("--only-failed: %s", err or (p.report .. " does not exist yet: run once without --only-failed"))
  end
  local redo, keep = mailuser.report.split(rows)
  ctx:say("--only-failed: %d users to run again from %s (%d done are kept)", (function()
    local n = 0 for _ in pairs(redo) do n = n + 1 end return n end)(), p.report, #keep)
  return redo, keep
end

-- Rows for users the source did not have (validate-users: rule 1, "not ready").
function M.missing_rows(failures, validating)
  local rows = {}
  for _, f in ipairs(failures or {}) do
    local p = f.problem
    if validating and p.code == "SourceNotFound" then
      p = mailuser.problem(p.code, "[1 " .. mailuser.RULES[1] .. "] " .. p.message, p.fix)
    end
    rows[#rows + 1] = { source = f.entry.source, target = f.entry.target, line = f.entry.line,
                        status = validating and "not ready" or "failed", problems = { p }, changes = {}, warnings = {} }
  end
  return rows
end

-- finish(ctx, p, rows, kept) -> the flat rows (for --output json's result), after the items,
-- the per-user table and the --report file.
function M.finish(ctx, p, rows, kept, ok_status)
  local flat = {}
  for _, r in ipairs(rows) do
    local f = mailuser.report.row(r)
    flat[#flat + 1] = f
    local ok = mailuser.report.OK[r.status] or (ok_status and ok_status[r.status]) or false
    ctx:item(r.source or "?", ok, (f.Problems ~= "" and f.Problems) or f.Changes)
  end
  mailuser.report.print(ctx, rows)
  if p.report then
    local all = {}
    for _, r in ipairs(kept or {}) do all[#all + 1] = r end
    for _, r in ipairs(rows) do all[#all + 1] = mailuser.report.row(r) end
    local ok, err = mailuser.report.write(p.report, all)
    if not ok then ctx:fail("--report %s: %s", p.report, tostring(err)) end
    ctx:summary("report", p.report)
  end
  return flat
end

-- on_count(ctx, label, o) -> a function(n) making o.progress a bar for n users (the whole-run
-- functions know n only after their first pass).
function M.on_count(ctx, label, o)
  return function(n) o.progress = M.progress(ctx, label, n) end
end

-- A progress bar for n users on stderr (a line per tenth when not a terminal; none for json).
-- What the run prints meanwhile goes above it (t2t.progress.above, through ctx:say).
local NOWHERE = { write = function() end, flush = function() end }
-- (test: {tty = bool, err = file} in place of the terminal's answer and stderr.)
function M.progress(ctx, label, n, test)
  if n == 0 then return nil end
  local progress = require "t2t.progress"
  if ctx.json then return progress.new(label, n, { out = NOWHERE }) end
  return progress.new(label, n, { tty = test and test.tty, out = test and test.err or io.stderr })
end

return M
