-- Shared by the roles end-to-end drivers (tests/e2e/roles_*.lua): an in-process simulator,
-- runbooks run in it with their output captured, the seeded admins' tenants for set-up, TAP.
local cjson = require "cjson"

local M = { failed = 0 }

function M.tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(require("t2t.core.fs").mkdir(d, tonumber("700", 8)))
  return d
end

-- TAP lines, counted by tests/run.sh.
function M.ok(cond, name, detail)
  if cond then
    print("ok - roles: " .. name)
  else
    M.failed = M.failed + 1
    print("not ok - roles: " .. name)
    if detail then for line in tostring(detail):gmatch("[^\n]+") do print("#   " .. line) end end
  end
  return cond
end

function M.start(o)
  local sim = require "t2t.sim"
  M.s = assert(sim.start(o or { users = 6, seed = 12 }))
  return M.s
end

-- run(name, args, opts) -> exit code, captured stdout+stderr, ctx.  Runs a runbook in this
-- process against the simulator (as `t2t run NAME ARGS --sim` would), output captured.
function M.run(name, args, extra)
  local rb = require "t2t.runbook"
  local decl = assert(rb.load(name))
  local opts = { sim = true, sim_instance = M.s, yes = true }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local buf = {}
  local real_write, real_stderr = io.write, io.stderr
  io.write = function(...) for _, x in ipairs({ ... }) do buf[#buf + 1] = tostring(x) end return io end
  io.stderr = { write = function(self, ...) for _, x in ipairs({ ... }) do buf[#buf + 1] = tostring(x) end return self end,
                flush = function() end }
  local params, perr = rb.parse_args(decl, args or {}, opts)
  local code, ctx
  if params then
    ctx = require("t2t.context").new(opts, decl)
    local ok, c = pcall(ctx.execute, ctx, decl, params)
    code = ok and c or -1
    if not ok then buf[#buf + 1] = tostring(c) end
  else
    code = 2
    buf[#buf + 1] = tostring(perr)
  end
  io.write, io.stderr = real_write, real_stderr
  return code, table.concat(buf), ctx
end

-- tenant(name) -> a t2t.tenant for the simulator's tenant `name` as its profile signs in
-- (the seeded admin app unless a bootstrap replaced it), with a plan that applies.
function M.tenant(name)
  local ctx = require("t2t.context").new({ sim = true, sim_instance = M.s, yes = true, output = "json" }, nil)
  local t = assert(require("t2t.tenant.session").open(ctx, name == "contoso" and "source" or "target", name))
  return t
end

-- The seeded admin's profile of a tenant (what the simulator started with), registered as
-- NAME-admin so set-up keeps working after a bootstrap replaced NAME.
function M.keep_admins()
  for _, n in ipairs({ "contoso", "fabrikam" }) do
    local p = {}
    for k, v in pairs(M.s.profile.tenants[n]) do p[k] = v end
    M.s.profile.tenants[n .. "-admin"] = p
  end
end

function M.admin(name) return M.tenant(name .. "-admin") end

-- A user profile for the simulator: device-code sign-in approved by the simulator as `upn`.
function M.user_profile(pname, tname, upn)
  local base = M.s.profile.tenants[tname]
  M.s.profile.tenants[pname] = { name = pname, tenant = base.initial_domain, tenant_id = base.tenant_id,
    initial_domain = base.initial_domain, domain = base.domain, cloud = "global", device_code = true,
    client_id = "fb78d390-0c51-40cd-8e17-fdbfab77341b", sim_user = upn,
    connect_to = base.connect_to, ca_file = base.ca_file, exo_securestring_key = base.exo_securestring_key }
end

-- new_user(t, alias) -> user object made through Graph as t's principal.
function M.new_user(t, alias)
  local upn = alias .. "@" .. t.domain
  local u = t:gget("/users/" .. upn)
  if u then return u end
  return assert(t:gpost("/users", { accountEnabled = true, displayName = alias, mailNickname = alias,
    userPrincipalName = upn, passwordProfile = { password = "Sim-" .. alias .. "-1!" } }))
end

function M.log_since(n)
  local r = assert(M.s:control("GET", "/_sim/log?since=" .. tostring(n or 0)))
  return r.value, r.last
end

function M.log_mark() local _, last = M.log_since(1e15) return last end

function M.contains(hay, needle) return type(hay) == "string" and hay:find(needle, 1, true) ~= nil end

function M.json(v) return cjson.encode(v) end

function M.finish()
  if M.s then M.s:stop() end
  os.exit(M.failed == 0 and 0 or 1)
end

return M
