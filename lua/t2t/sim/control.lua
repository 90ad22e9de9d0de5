-- t2t.sim.control: the simulator's own API under /_sim/ (any host; loopback only).  For the
-- main thread (t2t.sim), tests and people poking at a running `t2t sim`.
--
-- Every call must carry the instance's control key: the header line
-- "X-T2T-Sim-Control: KEY" (t2t.sim sends it; `t2t sim` writes it to a 0600 file, so
-- `curl -H @FILE` works).  Other local users can reach the port, never the key.
--   GET  /_sim/profile            tenants, admin apps (with secrets), hosts
--   GET  /_sim/state              the whole state (JSON), secrets and keys masked;
--                                 ?secrets=true includes them.  PUT /_sim/state  replace it
--   POST /_sim/save {path?}       write the state file (default: the --state file; a path must
--                                 name a file in the --state file's directory)
--   GET  /_sim/log?since=N        request log entries after sequence N
--   GET  /_sim/faults             current faults/latency; POST {faults = SPEC, latency = MS|A-B}
--   GET  /_sim/clock              {now, offset}; POST {offset = s} or {advance = s}
--   POST /_sim/token {tid, aud, appid, oid, roles, wids, scp, lifetime}  issue a token directly
--   POST /_sim/device/approve {user_code, user?}   approve a device code (login service hook)
--   POST /_sim/mail {tenant, from, to, subject, body}  a message the tenant's EXO signs (DKIM)
--   POST /_sim/dns                the DNS server of the tenants' domains (started on first use)
--   ANY  /_sim/svc/NAME/...       delegated to the service module's control(sim, req, rest)
--   POST /_sim/recipients, GET|PATCH|DELETE /_sim/recipients/TENANT/IDENTITY, POST /_sim/scenario
--                                 mailboxes, mail users, contacts (t2t.sim.population)
local model = require "t2t.sim.model"
local context = require "t2t.sim.context"
local router = require "t2t.sim.router"

local M = {}

M.KEY_HEADER = "x-t2t-sim-control"

local function json(status, body) return { status = status, body = body } end
local function bad(msg) return json(400, { error = { code = "BadRequest", message = msg } }) end

-- authorized(sim, req) -> true when req carries this instance's control key (compared in
-- constant time).  Without a configured key nothing is authorized: the API fails closed.
local function authorized(sim, req)
  local want = sim.options and sim.options.control_key
  local got = req.headers and req.headers[M.KEY_HEADER]
  if type(want) ~= "string" or #want < 16 or type(got) ~= "string" or #got ~= #want then return false end
  return require("t2t.crypto").equal(got, want)
end

local function unauthorized()
  return json(401, { error = { code = "Unauthorized", message = "the simulator's control API needs the " ..
    "instance's key in an X-T2T-Sim-Control header (t2t sim writes it to a 0600 file and prints its path)" } })
end

-- tenant_profile(t) -> what a client needs to use a tenant (secrets included: loopback only).
local function tenant_profile(t)
  local p = { id = t.id, name = t.name, initial_domain = t.initial_domain,
              display_name = t.display_name, domains = {} }
  for i, d in ipairs(t.domains) do p.domains[i] = d.id end
  local a = t.seeded and t.seeded.admin_app
  if a then
    local app = t.dir.objects[a.object_id]
    local cred = app and app.passwordCredentials and app.passwordCredentials[1]
    p.admin_app = { app_id = a.app_id, object_id = a.object_id, sp_id = a.sp_id,
                    client_secret = cred and cred._secret }
  end
  local u = t.seeded and t.seeded.admin_user and t.dir.objects[t.seeded.admin_user]
  if u then p.admin_user = u.userPrincipalName end
  local subs = {}
  for id in pairs(t.azure and t.azure.subscriptions or {}) do subs[#subs + 1] = id end
  table.sort(subs)
  p.subscription = subs[1]
  return p
end

-- A movable mailbox: a licensed user mailbox without holds or more than 12 aux archives.
local function clean(r)
  return r.RecipientTypeDetails == "UserMailbox" and not r.LitigationHoldEnabled
     and not r.DelayHoldApplied and not r.DelayReleaseHoldApplied and not r.ComplianceTagHoldApplied
     and (r.InPlaceHolds == nil or #r.InPlaceHolds == 0) and (r.AuxArchiveCount or 0) <= 12
     and not r._OrgHolds and not r._SubstrateHoldsItems
     and r.PersistedCapabilities and #r.PersistedCapabilities > 0
end

-- sample_mailboxes(t, n) -> the n alphabetically first movable mailboxes' primary addresses
-- (one pass, no sort of the whole tenant).
local function sample_mailboxes(t, n)
  local best = {}
  for _, r in pairs(t.exo.recipients) do
    if clean(r) then
      local a = r.PrimarySmtpAddress
      if #best < n or a < best[#best] then
        local i = #best < n and #best + 1 or #best
        best[i] = a
        while i > 1 and best[i] < best[i - 1] do best[i], best[i - 1] = best[i - 1], best[i]; i = i - 1 end
      end
    end
  end
  return best
end

-- profile(sim) -> {tenants = {contoso = {...}, ...}, source, target, hosts, seed}.
function M.profile(sim)
  local st = sim.state
  local out = { seed = st.seed, tenants = {}, hosts = router.CERT_HOSTS,
                dns = sim.dns and { address = sim.dns.address, tsig = sim.dns.tsig }
                      or (sim.dns_error and { error = sim.dns_error }) or nil }
  for _, t in pairs(st.tenants) do out.tenants[t.name] = tenant_profile(t) end
  if st.pair then
    local s, t = st.tenants[st.pair.source], st.tenants[st.pair.target]
    out.source = s and s.name
    out.target = t and t.name
    if s then out.sample_mailboxes = sample_mailboxes(s, 10) end
  end
  return out
end

local routes = {}

routes["GET /_sim/profile"] = function(sim) return json(200, M.profile(sim)) end

-- The public half of the simulated module's SecureString key (made on first use).
routes["GET /_sim/securestring-key"] = function(sim)
  return json(200, { public_pem = model.securestring_key(sim.state, true):public_pem() })
end

-- Where the state keeps secrets and private keys: app passwords (_secret), the SecureString
-- key (exo_securestring_pem) and Key Vault secret values (secrets.NAME.versions.V.value, which
-- hold certificates' private keys too).  secret_slots(state) -> {{table, key}, ...}, found by
-- walking the whole state so that new places of these shapes are covered as services grow.
local SECRET_FIELDS = { _secret = true, exo_securestring_pem = true }
local function secret_slots(st)
  local slots, seen = {}, {}
  local function walk(t, key, parent_key, grand_key)
    if seen[t] then return end
    seen[t] = true
    for k, v in pairs(t) do
      if type(v) == "table" then
        walk(v, k, key, parent_key)
      elseif type(v) == "string" and (SECRET_FIELDS[k] or (k == "value" and parent_key == "versions")
                                      and grand_key ~= nil) then
        slots[#slots + 1] = { t, k }
      end
    end
  end
  walk(st)
  return slots
end
M.SECRET_FIELDS = SECRET_FIELDS

-- encode_masked(state) -> the state's JSON with every secret and private key replaced by
-- "***" (the state itself is left as it was, even if encoding raises).
function M.encode_masked(st)
  local slots = secret_slots(st)
  local saved = {}
  for i, s in ipairs(slots) do saved[i] = s[1][s[2]]; s[1][s[2]] = "***" end
  local ok, text = pcall(model.encode_state, st)
  for i, s in ipairs(slots) do s[1][s[2]] = saved[i] end
  if not ok then error(text, 0) end
  return text
end

routes["GET /_sim/state"] = function(sim, req)
  local want = req.args and req.args.secrets
  local body = (want == "true" or want == "1") and model.encode_state(sim.state) or M.encode_masked(sim.state)
  return { status = 200, headers = { ["content-type"] = "application/json" }, body = body }
end

routes["PUT /_sim/state"] = function(sim, req)
  local st, err = model.decode_state(req.body or "")
  if not st then return bad(err) end
  sim.state = st
  sim.rng = model.runtime_rng(st, st.seed)
  return { status = 204 }
end

-- save_path(sim, asked) -> the path to save to | nil, err.  Only the --state file's directory
-- may be written, so the API cannot be pointed at another file; a link, directory or FIFO there
-- is refused (t2t.core.fs), and the write itself goes to a new file renamed into place.
function M.save_path(sim, asked)
  local state = sim.options and sim.options.state
  if type(state) ~= "string" or state == "" then
    return nil, "the simulator was started without a --state file: there is nowhere to save"
  end
  if asked == nil then return state end
  if type(asked) ~= "string" or asked == "" then return nil, "path must be a file name" end
  local dir = state:match("^(.*)/[^/]*$") or "."
  if dir == "" then dir = "/" end
  local adir, name = asked:match("^(.*)/([^/]*)$")
  if not adir then adir, name = dir, asked                   -- a bare name: in that directory
  elseif adir == "" then adir = "/" end
  if name == "" or name == "." or name == ".." or adir ~= dir then
    return nil, string.format("path must name a file in the state file's directory %s", dir)
  end
  local path = dir == "." and name or (dir:gsub("/$", "") .. "/" .. name)
  local ok, err = require("t2t.core.fs").check_write(path)
  if not ok then return nil, err end
  return path
end

routes["POST /_sim/save"] = function(sim, req)
  local path, perr = M.save_path(sim, type(req.json) == "table" and req.json.path or nil)
  if not path then return bad(perr) end
  require("t2t.sim.dnsworld").before_save(sim)    -- RFC 2136 changes live in the DNS server
  local ok, err = model.save(sim.state, path)
  if not ok then return json(500, { error = { code = "SaveFailed", message = tostring(err) } }) end
  return json(200, { path = path })
end

routes["GET /_sim/log"] = function(sim, req)
  local since = tonumber(req.args and req.args.since) or 0
  return json(200, { value = model.array(sim:log_entries(since)), last = sim.log_n })
end

-- The DNS server for the tenants' domains, started on first use: {address, tsig} | 503.
routes["POST /_sim/dns"] = function(sim)
  if not sim.dns then
    local ok, err = require("t2t.sim.dnsworld").start(sim)
    if not ok then return json(503, { error = { code = "NoDnsServer", message = tostring(err) } }) end
  end
  return json(200, { address = sim.dns.address, tsig = sim.dns.tsig })
end

-- A message as the tenant's Exchange Online would send it, DKIM-signed (t2t.sim.exo.dkim).
routes["POST /_sim/mail"] = function(sim, req)
  local r, err = require("t2t.sim.exo.dkim").send(sim, type(req.json) == "table" and req.json or {})
  if not r then return bad(err) end
  return json(200, r)
end

routes["GET /_sim/faults"] = function(sim)
  return json(200, { faults = sim.faults, latency = sim.latency })
end

routes["POST /_sim/faults"] = function(sim, req)
  local b = type(req.json) == "table" and req.json or {}
  if b.faults ~= nil then
    local f, err = context.parse_faults(b.faults)
    if not f then return bad(err) end
    sim.faults = f
  end
  if b.latency ~= nil then
    local l, err = context.parse_latency(b.latency)
    if not l then return bad(err) end
    sim.latency = l
  end
  return json(200, { faults = sim.faults, latency = sim.latency })
end

routes["GET /_sim/clock"] = function(sim)
  return json(200, { now = sim:now(), offset = sim.clock_offset })
end

routes["POST /_sim/clock"] = function(sim, req)
  local b = type(req.json) == "table" and req.json or {}
  if tonumber(b.offset) then sim.clock_offset = tonumber(b.offset)
  elseif tonumber(b.advance) then sim.clock_offset = sim.clock_offset + tonumber(b.advance)
  else return bad("give offset or advance (seconds)") end
  return json(200, { now = sim:now(), offset = sim.clock_offset })
end

routes["POST /_sim/token"] = function(sim, req)
  local b = req.json
  if type(b) ~= "table" or type(b.tid) ~= "string" or type(b.aud) ~= "string" then
    return bad("tid and aud are required")
  end
  local token, claims = sim.tokens:issue(b)
  return json(200, { access_token = token, expires_in = claims.exp - claims.iat,
                     token_type = "Bearer" })
end

local function login_hook(sim, req, fn_name)
  local mod = router.module("login")
  local fn = mod and mod[fn_name]
  if not fn then return json(501, { error = { code = "NotImplemented",
    message = "the login service has no " .. fn_name .. " hook" } }) end
  return fn(sim, req.json or {}, req)
end

routes["POST /_sim/device/approve"] = function(sim, req) return login_hook(sim, req, "approve") end
routes["POST /_sim/device/deny"] = function(sim, req) return login_hook(sim, req, "deny") end

function M.handle(sim, req)
  if not authorized(sim, req) then return unauthorized() end
  local path = req.path:gsub("/+$", "")
  local r = routes[req.method .. " " .. path]
  if r then return r(sim, req) end
  local pop = path:match("^/_sim/(recipients.*)$") or (path == "/_sim/scenario" and "scenario")
  if pop then return require("t2t.sim.population").control(sim, req, pop) end
  local svc, rest = path:match("^/_sim/svc/([%w_]+)(.*)$")
  if svc then
    local mod = router.MODULES[svc] and router.module(svc)
    if not mod or not mod.control then
      return json(404, { error = { code = "NotFound", message = "no control hook for " .. svc } })
    end
    return mod.control(sim, req, rest)
  end
  for k in pairs(routes) do
    if k:match("^%u+ (.*)$") == path then
      return json(405, { error = { code = "MethodNotAllowed", message = req.method .. " " .. path } })
    end
  end
  return json(404, { error = { code = "NotFound", message = "no control route " .. path } })
end

return M
