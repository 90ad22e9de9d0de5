-- t2t.batch.session: what the batch runbooks share -- their common parameters, opening the
-- tenants (a profile, or the simulator's pair under --sim), the batches file, the backend, which
-- batches a run is about, the users migrate-batch is given, and times as admins write them.
local tsession = require "t2t.tenant.session"
local journal = require "t2t.batch.journal"
local batch = require "t2t.batch"

local M = {}
local lower, fmt = string.lower, string.format

-- params(extra, o) -> the parameters every batch runbook takes, then extra (a fresh list each
-- call: declarations are normalised in place).  o.no_batch: without --batch.
function M.params(extra, o)
  local l = {
    { name = "target", type = "string", help = "profile of the target tenant (default with --sim: fabrikam)" },
    { name = "source", type = "string", help = "profile of the source tenant (optional; default with --sim: contoso)" },
    { name = "batches", type = "string", default = journal.DEFAULT,
      help = "the batches file: which user is in which batch (migrate-batch writes it, batch-fix keeps it)" },
    { name = "backend", type = "string", help = "exo (migration batches) or graph (the crossTenantMigrationJob API, beta); default: the batches file's, else exo" },
  }
  if not (o and o.no_batch) then
    l[#l + 1] = { name = "batch", type = "list", help = "the batches to work on (default: every batch of the batches file, else of the tenant)" }
  end
  for _, x in ipairs(extra or {}) do l[#l + 1] = x end
  return l
end

-- open(ctx, p, o) -> run {target, source?, journal?, backend, kind}: o.need_source makes the
-- source profile required; under --sim the seeded source is opened unless o.no_source.
function M.open(ctx, p, o)
  o = o or {}
  local run = {}
  local t, err = tsession.open(ctx, "target", p.target)
  if err then ctx:fail("target tenant: %s", tostring(err)) end
  if not t then ctx:usage("which target tenant? pass --target PROFILE (or --sim)") end
  run.target = t
  if p.source or (ctx.opts.sim and not o.no_source) then
    local s, serr = tsession.open(ctx, "source", p.source)
    if serr then ctx:fail("source tenant: %s", tostring(serr)) end
    run.source = s
  end
  if o.need_source and not run.source then ctx:usage("this needs the source tenant too: pass --source PROFILE") end
  local j, jerr = journal.load(p.batches)
  if jerr then ctx:fail("--batches %s", tostring(jerr)) end
  run.journal = j
  local kind = p.backend or (j and j.doc.backend) or "exo"
  if kind ~= "exo" and kind ~= "graph" then ctx:usage("--backend is exo or graph, not '%s'", kind) end
  if j and j.doc.backend and p.backend and p.backend ~= j.doc.backend then
    ctx:usage("%s was made with --backend %s; use the same backend for its batches", p.batches, j.doc.backend)
  end
  run.kind = kind
  run.backend = batch.backend(t, { backend = kind, source_id = (run.source and run.source.id) or
    (j and j.doc.source and j.doc.source.tenant_id), journal = j })
  if j then M.use_journal(run, j) end
  return run
end

-- use_journal(run, J): the backend reads the batches file J (the Graph backend maps users by it).
function M.use_journal(run, J)
  run.journal_in_use = J
  run.backend.journal = J
  run.backend.spec_of = function(name) return batch.spec(J, name) end
end

-- names(ctx, p, run) -> the batch names this run is about: --batch, else the batches file's,
-- else every batch of the tenant.
function M.names(ctx, p, run)
  if p.batch and #p.batch > 0 then return p.batch end
  if run.journal then return run.journal:names() end
  local list, err = run.backend:batches()
  if not list then ctx:fail("reading the migration batches: %s", tostring(err)) end
  local out = {}
  for _, b in ipairs(list) do out[#out + 1] = b.Identity or b.Name or b.name end
  table.sort(out)
  if #out == 0 then
    ctx:fail("no migration batches in %s and no batches file (%s): run migrate-batch first", run.target.name, p.batches)
  end
  return out
end

-- snapshots(ctx, run, names, o) -> {snap...} (t2t.batch.status shapes); a batch that cannot be
-- read ends the run with what to do.
function M.snapshots(ctx, run, names, o)
  local out = {}
  for _, n in ipairs(names) do
    local snap, err = run.backend:snapshot(n, o)
    if not snap then ctx:fail("batch %s: %s", n, tostring(err)) end
    out[#out + 1] = snap
  end
  return out
end

-- A time as admins write it: ISO 8601 ("2025-03-01T18:00", UTC unless it carries Z or an
-- offset), "now", or relative to now ("+30m", "+2h", "+1d").  -> epoch | nil, err
function M.parse_time(s, now)
  now = now or os.time()
  if s == nil then return nil end
  if lower(s) == "now" then return now end
  local n, unit = s:match("^%+(%d+)%s*([mhd])$")
  if n then return now + tonumber(n) * ({ m = 60, h = 3600, d = 86400 })[unit] end
  local y, mo, d, h, mi, sec = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):?(%d*)")
  if not y then
    y, mo, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
    h, mi, sec = "00", "00", "0"
  end
  if not y then return nil, fmt("'%s' is not a time: write 2025-03-01T18:00 (UTC), +2h, +1d or now", s) end
  local t = os.time { year = y, month = mo, day = d, hour = h, min = mi, sec = tonumber(sec) or 0 }
  t = t + (os.time() - os.time(os.date("!*t")))          -- the fields are UTC
  local sign, oh, om = s:match("([%+%-])(%d%d):?(%d%d)$")
  if sign and #s > 16 then t = t - (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "+" and 1 or -1) end
  return t
end

function M.iso(t) return t and require("t2t.time").iso(t) or nil end

-- endpoint(ctx, run, name) -> the migration endpoint's name: --endpoint, the batches file's, or
-- the target's one cross-tenant (ExchangeRemoteMove) endpoint for the source.
function M.endpoint(ctx, run, name, source_domain)
  if name then return name end
  if run.journal and run.journal.doc.endpoint then return run.journal.doc.endpoint end
  local list, err = run.target:xo("Get-MigrationEndpoint", {})
  if not list then ctx:fail("reading the migration endpoints: %s", tostring(err)) end
  local found = {}
  for _, e in ipairs(list) do
    local remote = lower(e.RemoteTenant or "")
    if lower(e.EndpointType or "") == "exchangeremotemove" and (not source_domain or remote == "" or
       remote == lower(source_domain)) then found[#found + 1] = e.Identity or e.Name end
  end
  if #found == 1 then return found[1] end
  if #found == 0 then
    ctx:fail("the target %s has no cross-tenant migration endpoint%s: run setup-target first", run.target.name,
      source_domain and (" for " .. source_domain) or "")
  end
  table.sort(found)
  ctx:usage("the target has several cross-tenant endpoints (%s): pass --endpoint NAME", table.concat(found, ", "))
end

return M
