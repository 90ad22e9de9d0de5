-- t2t.context: the `ctx` a runbook's run(ctx, p) receives — output, logging, confirmation,
-- per-item results, the closing summary, the exit code, and connect() with the run's options.
local log = require "t2t.log"
local errors = require "t2t.errors"

local M = {}
M.__index = M

local EXIT = { ok = 0, failure = 1, usage = 2, partial = 3 }

function M.new(opts, decl)
  opts = opts or {}
  if opts.log_level then log.set_level(opts.log_level) end
  local self
  self = setmetatable({
    opts = opts,
    name = decl and decl.name or "?",
    invoked = decl and decl.invoked,
    log = log,
    summary_rows = {},
    items = { ok = 0, failed = 0, list = {} },
    json = opts.output == "json",
    decl = decl,
    outputs = {},
  }, M)
  -- every mutation a runbook makes goes through ctx.plan (--plan: shown, not applied)
  self.plan = require("t2t.plan").new {
    dry_run = opts.plan, audit = opts.audit,
    out = function(line) self:say("%s", line) end,
    preflight = function() return self:check_outputs() end,
  }
  if opts.audit then self:output(opts.audit, "the audit file (--audit)") end
  local state = M.sim_state(opts)
  if state then self:output(state, "the simulator's state file (--sim)", "sim_state") end
  -- the runbook file's connect(name) opens tenants with this run's options
  if decl and type(decl.env) == "table" then
    rawset(decl.env, "connect", function(name) return self:connect(name) end)
  end
  return self
end

-- ctx:connect(name) -> {graph, exo, azure, profile} for the profile `name` (default: --profile,
-- else the config's default; under --sim the simulated tenant, default contoso).  A profile
-- that cannot be used stops the run with what to fix (exit 2 when it is a usage error).
function M:connect(name)
  local c, err = require("t2t.connect").profile(name, self.opts)
  if c then
    local p = c.profile or {}
    self:check_expiry(require("t2t.tenant").new { name = p.name, id = p.tenant_id, graph = c.graph, plan = self.plan,
                                                  say = function(line) self:say("%s", line) end }, p)
    return c
  end
  if err.usage then self.code = EXIT.usage end
  error(err, 0)
end

-- ctx:expiry_window() -> days: a credential expiring within them is named (--warn-expiry).
M.EXPIRY_DAYS = 30
function M:expiry_window() return self.opts.warn_expiry or M.EXPIRY_DAYS end

-- ctx:check_expiry(t, profile): at the start of every run, name the credential this profile
-- signs in with when it expires within the --warn-expiry window -- once per credential and run,
-- whichever path opened it (t2t.tenant.session.open, connect() in a runbook file).
function M:check_expiry(t, prof)
  local key = tostring(prof.client_id) .. "@" .. tostring(prof.tenant_id or prof.tenant or t.id)
  self.expiry_checked = self.expiry_checked or {}
  if self.expiry_checked[key] then return end
  self.expiry_checked[key] = true
  require("t2t.tenant.session").warn_own_expiry(t, prof, self:expiry_window())
end

-- The --sim=STATE file of this run, when there is one.
function M.sim_state(opts)
  local s = opts.sim_instance
  if s and s.state_file then return s.state_file end
  if type(opts.sim) == "string" and opts.sim ~= "" then return opts.sim end
end

-- ctx:output(path, what [, kind]): a file this run must write (hand-off, report, secret file).
-- Every one is checked before the first change is made (plan preflight), so a run never changes
-- a tenant and then fails to record it.
function M:output(path, what, kind)
  if path then self.outputs[#self.outputs + 1] = { path = path, what = what or "an output file", kind = kind } end
end

-- The run has said that the simulator's state file cannot be written: the host, which saves
-- the state once more at exit (t2t.cli), then says nothing more about it.
local function state_reported(self) self.opts.sim_state_reported = true end

-- check_outputs() -> true | nil, err: every registered output can be written.
function M:check_outputs()
  local fs = require "t2t.core.fs"
  for _, o in ipairs(self.outputs) do
    local ok, err = fs.check_write(o.path)
    if not ok then
      if o.kind == "sim_state" then state_reported(self) end
      return nil, string.format("%s cannot be written: %s; give a path you can write", o.what, tostring(err))
    end
  end
  return true
end

-- Print a line of the runbook's output (text mode only; redacted).
-- Above a live progress bar, if one is drawn (t2t.progress.above).
function M:say(fmt, ...)
  if self.json then return end
  local s = log.redact(select("#", ...) > 0 and string.format(fmt, ...) or tostring(fmt))
  local progress = package.loaded["t2t.progress"]      -- no bar can be live if never loaded
  if progress then progress.above(function() io.write(s, "\n") end)
  else io.write(s, "\n") end
end

-- Stop the runbook with a message a person can act on.
function M.fail(_, fmt, ...)
  local s = select("#", ...) > 0 and string.format(fmt, ...) or tostring(fmt)
  errors.raise(s)
end

-- Stop the runbook because it was called wrongly (a missing or conflicting parameter): exit 2,
-- with a pointer to its help.
function M:usage(fmt, ...)
  local s = select("#", ...) > 0 and string.format(fmt, ...) or tostring(fmt)
  self.code = EXIT.usage
  errors.raise(s .. string.format(" ('t2t help %s' lists the parameters)", self.invoked or self.name))
end

-- ctx:tempdir() -> a new private directory (0700, under $TMPDIR or /tmp) that is removed with
-- everything in it when the run ends -- failed or interrupted (Ctrl-C) too.
function M:tempdir()
  local fs = require "t2t.core.fs"
  local rnd = io.open("/dev/urandom", "rb")
  local bytes = rnd and rnd:read(8) or tostring(os.clock()) .. tostring({})
  if rnd then rnd:close() end
  local base = os.getenv("TMPDIR")
  local dir = string.format("%s/t2t-%s-%s", base ~= nil and base ~= "" and base or "/tmp", self.name,
                            (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end)))
  local ok, err = fs.mkdir(dir, tonumber("700", 8))
  if not ok then self:fail("cannot make a temporary directory: %s", tostring(err)) end
  self.tempdirs = self.tempdirs or {}
  self.tempdirs[#self.tempdirs + 1] = dir
  return dir
end

-- Remove path and, for a directory, what is in it.
local function remove_tree(path)
  if os.remove(path) then return end
  for _, name in ipairs(require("t2t.core.fs").list(path) or {}) do remove_tree(path .. "/" .. name) end
  os.remove(path)
end

-- Record a value for the closing summary table.
function M:summary(key, value)
  self.summary_rows[#self.summary_rows + 1] = { tostring(key), value }
end

-- Record one item's result in a bulk job; failed items make the exit code 3 (partial).
function M:item(name, ok, detail)
  local it = self.items
  if ok then it.ok = it.ok + 1 else it.failed = it.failed + 1 end
  it.list[#it.list + 1] = { name = tostring(name), ok = ok and true or false,
                            detail = detail ~= nil and log.redact(tostring(detail)) or nil }
end

-- Ask a yes/no question; --yes answers yes; without a terminal the answer is no.
function M:confirm(question)
  if self.opts.yes then return true end
  local term = require "t2t.core.term"
  if not term.isatty(0) then
    self.log.warn("%s -- no terminal to ask on; pass --yes to confirm", question)
    return false
  end
  io.write(question, " [y/N] ")
  io.flush()
  local answer = io.read("l") or ""
  return answer:match("^%s*[yY]") ~= nil
end

local function print_summary(self, status)
  local rows = self.summary_rows
  local it = self.items
  local pl = self.plan
  if pl.dry_run then rows[#rows + 1] = { "changes planned", pl.planned }
  elseif pl.applied + pl.failed > 0 then
    rows[#rows + 1] = { "changes applied", pl.applied }
    if pl.failed > 0 then rows[#rows + 1] = { "changes failed", pl.failed } end
  end
  if it.ok + it.failed > 0 then
    rows[#rows + 1] = { "items ok", it.ok }
    rows[#rows + 1] = { "items failed", it.failed }
  end
  rows[#rows + 1] = { "result", status }
  local width = 0
  for _, r in ipairs(rows) do width = math.max(width, #r[1]) end
  io.write("\n")
  for _, r in ipairs(rows) do
    io.write(log.redact(string.format("  %-" .. width .. "s  %s", r[1], tostring(r[2]))), "\n")
  end
end

local function json_result(self, status, value, err)
  local cjson = require "cjson"
  local summary = {}
  for _, r in ipairs(self.summary_rows) do summary[r[1]] = r[2] end
  local doc = { runbook = self.name, status = status, summary = summary,
                items = #self.items.list > 0 and self.items.list or nil,
                result = type(value) == "table" and value or nil,
                error = err }
  io.write(log.redact(cjson.encode(doc)), "\n")
end

-- Preflight: before anything changes in tenant `t` (a t2t.tenant, opened as `role`), check its
-- signed-in principal against the runbook's `needs`; a missing grant ends the run here, saying
-- what is missing, how it would be granted and who can (t2t.roles.preflight).  Once per tenant.
function M:preflight(role, t)
  local needs = self.decl and self.decl.needs
  if needs == nil or self.opts.no_preflight then return true end
  self.preflighted = self.preflighted or {}
  local key = tostring(role) .. "|" .. tostring(t.id or t.name)
  if self.preflighted[key] then return true end
  local r = require("t2t.roles.needs").resolve(needs, role, self.params)
  if #r.graph + #r.exchange + #r.entra == 0 and #r.optional.graph + #r.optional.exchange == 0 then return true end
  local report, err = require("t2t.roles.preflight").evaluate(t, r)
  if not report then self:fail("preflight in %s: %s", tostring(t.name), tostring(err)) end
  local explain = require "t2t.roles.explain"
  local missing_optional = false
  for _, e in ipairs(report.optional) do if not e.ok then missing_optional = true end end
  if not report.ok or missing_optional then explain.explain(t, report) end
  if report.ok and not missing_optional then
    self:say("Preflight in %s: %s holds %s", tostring(t.name), explain.who_label(report.principal),
             #report.items > 0 and string.format("the %d grants this runbook needs", #report.items)
             or string.format("the %d optional grants this runbook uses", #report.optional))
  else
    for _, line in ipairs(explain.lines(report, "Preflight in " .. tostring(t.name))) do self:say("%s", line) end
  end
  self.preflighted[key] = report
  if not report.ok then self:fail("%s", explain.message(report, t.name)) end
  return true
end

-- Run the declaration's `run` and turn its outcome into output and an exit code.
-- The simulator's state, saved now under --sim=STATE when changes were made: a state that
-- cannot be saved is a lost record, so the run fails (exit 1).  true | nil, err
local function save_sim(self)
  local s = self.opts.sim_instance
  if self.plan.dry_run or not (s and s.state_file and s.save) or self.plan.applied + self.plan.failed == 0 then
    return true
  end
  local ok, err = s:save()
  if not ok then
    state_reported(self)
    return nil, string.format("the simulator's state could not be saved to %s: %s", s.state_file, tostring(err))
  end
  return true
end

local depth = 0          -- runs in progress in this process: a runbook may run others (demo)

function M:execute(decl, params)
  self.params = params
  local host = require "t2t.core.host"
  local signals = host.interrupted()
  depth = depth + 1
  local ok, value = host.pcall(decl.run, self, params)
  depth = depth - 1
  -- Ctrl-C, kill or a closed terminal: this run stops, and so does the one that ran it
  local interrupted = not ok and host.interrupted() > signals
  for _, dir in ipairs(self.tempdirs or {}) do remove_tree(dir) end
  self.plan:close()
  if ok then
    local sok, serr = save_sim(self)
    if not sok then ok, value = false, errors.new(serr) end
  end
  local status, code, err
  if ok then
    if self.items.failed > 0 then
      status, code = self.items.ok > 0 and "partial" or "failed", self.items.ok > 0 and EXIT.partial or EXIT.failure
    else
      status, code = "ok", EXIT.ok
    end
  else
    status, code = "failed", self.code or EXIT.failure
    err = errors.format(value)
    io.stderr:write(log.redact("t2t: " .. self.name .. ": " .. err), "\n")
    err = errors.split(err)
  end
  if self.json then json_result(self, status, value, err and log.redact(err))
  else print_summary(self, status) end
  if interrupted and depth > 0 then error("interrupted!", 0) end
  return code
end

return M
