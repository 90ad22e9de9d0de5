-- t2t.sim.context: the `sim` object every service receives — state, seeded PRNG, simulated
-- clock, token checks, replication-lag visibility, fault settings and the request log.
-- Contract: docs/simulator.md ("The sim context").
local cjson = require "cjson"
local model = require "t2t.sim.model"
local tokens = require "t2t.sim.tokens"

local M = {}

local Sim = {}
Sim.__index = Sim
M.Sim = Sim

-- A real-time clock with sub-second resolution: epoch at start + monotonic elapsed.
local ok_sched, sched = pcall(require, "t2t.core.sched")
local mono = ok_sched and sched.now or nil

---------------------------------------------------------------------------------------------
-- Fault and latency specs.

local STATUS_FAULTS = { ["429"] = true, ["500"] = true, ["502"] = true, ["503"] = true, ["504"] = true }
local SHARE_FAULTS = { reset = true, lost = true, mid = true }
local NUMBER_FAULTS = { exo_concurrency = true, graph_rate = true, token_lifetime = true,
                        retry_after = true }
M.SERVICES = { login = true, graph = true, exo = true, arm = true, keyvault = true }

-- parse_duration("2s" | "500ms" | "1m" | "3") -> seconds | nil.
local function parse_duration(v)
  local n, unit = tostring(v):match("^%s*([%d%.]+)%s*(%a*)%s*$")
  n = tonumber(n)
  if not n then return nil end
  if unit == "" or unit == "s" then return n end
  if unit == "ms" then return n / 1000 end
  if unit == "m" or unit == "min" then return n * 60 end
  return nil
end
M.parse_duration = parse_duration

-- parse_faults("429=0.05,503=0.02,reset=0.01,lost=0.01,lag=2s,exo_concurrency=3,graph_rate=600")
-- -> faults table | nil, err.  A share may be scoped to one service: "graph.429=0.1".
-- Result: { ["429"] = share, ..., reset, lost, mid, lag = seconds, exo_concurrency = n,
--           graph_rate = n, token_lifetime = s, retry_after = s,
--           scoped = { graph = { ["429"] = 0.1 } } }.
function M.parse_faults(spec)
  local f = { scoped = {} }
  if spec == nil or spec == "" or spec == false then return f end
  if type(spec) == "table" then
    for k, v in pairs(spec) do f[k] = v end
    f.scoped = f.scoped or {}
    return f
  end
  for item in tostring(spec):gmatch("[^,%s]+") do
    local k, v = item:match("^([%w_%.]+)=(.+)$")
    if not k then return nil, "fault '" .. item .. "': expected NAME=VALUE" end
    local svc, name = k:match("^(%a+)%.(.+)$")
    if svc and not M.SERVICES[svc] then return nil, "fault '" .. item .. "': unknown service " .. svc end
    name = name or k
    local dest = f
    if svc then
      dest = f.scoped[svc] or {}
      f.scoped[svc] = dest
    end
    if STATUS_FAULTS[name] or SHARE_FAULTS[name] then
      local p = tonumber(v)
      if not p or p < 0 or p > 1 then return nil, "fault '" .. item .. "': share must be 0..1" end
      dest[name] = p
    elseif name == "lag" then
      local s = parse_duration(v)
      if not s then return nil, "fault '" .. item .. "': duration like 2s or 500ms expected" end
      dest.lag = s
    elseif NUMBER_FAULTS[name] then
      local n = name == "token_lifetime" and parse_duration(v) or tonumber(v)
      if not n or n < 0 then return nil, "fault '" .. item .. "': number expected" end
      dest[name] = n
    else
      return nil, "unknown fault '" .. name .. "' (429, 500, 502, 503, 504, reset, lost, mid, " ..
                  "lag, exo_concurrency, graph_rate, token_lifetime, retry_after)"
    end
  end
  return f
end

-- parse_latency("20" | "5-40" | 20) -> {min, max} in seconds | nil, err.  Values are ms.
function M.parse_latency(v)
  if v == nil or v == false or v == "" then return { min = 0, max = 0 } end
  if type(v) == "table" then return v end
  local a, b = tostring(v):match("^%s*(%d+%.?%d*)%s*%-%s*(%d+%.?%d*)%s*$")
  if not a then a = tostring(v):match("^%s*(%d+%.?%d*)%s*$"); b = a end
  a, b = tonumber(a), tonumber(b)
  if not a or b < a then return nil, "latency: MS or MIN-MAX (milliseconds) expected" end
  return { min = a / 1000, max = b / 1000 }
end

---------------------------------------------------------------------------------------------

-- new{state, seed, faults, latency, log = path | true, now = fn?} -> sim.
-- faults/latency take the spec strings (or parsed tables).  Raises on a bad spec.
function M.new(o)
  local faults = assert(M.parse_faults(o.faults))
  local latency = assert(M.parse_latency(o.latency))
  local seed = o.seed or (o.state and o.state.seed) or 1
  local state = o.state or model.new_state(seed)
  local self = setmetatable({
    state = state,
    model = model,
    rng = model.runtime_rng(state, seed),
    faults = faults,
    latency = latency,
    clock_offset = 0,
    log_ring = {}, log_n = 0, log_max = o.log_max or 10000,
    log_file = nil,
    hooks = {},
  }, Sim)
  -- fault draws depend on the seed alone (not on how far the id stream has run), so the same
  -- seed gives the same sequence of faults on every load of a state
  self.fault_rng = model.rng(seed):fork("runtime"):fork("faults")
  if o.now then self.base_now = o.now end
  self.t0_wall, self.t0_mono = os.time(), mono and mono() or nil
  self.tokens = tokens.new { rng = self.rng:fork("tokens"), key = o.key, now = function() return self:now() end }
  if type(o.log) == "string" and o.log ~= "" then
    -- never through a link, regular files only, 0600: a planted link cannot redirect the write
    self.log_file = assert(require("t2t.core.fs").open_append(o.log, tonumber("600", 8), false))
  end
  return self
end

-- now() -> simulated epoch seconds (float): real time plus the control API's offset.
function Sim:now()
  local base
  if self.base_now then base = self.base_now()
  elseif self.t0_mono then base = self.t0_wall + (mono() - self.t0_mono)
  else base = os.time() end
  return base + self.clock_offset
end

-- visible(obj) -> false while obj is within the replication-lag window (lag= fault) after its
-- creation (obj.created) or its last change (obj.changed, when a service sets it).
function Sim:visible(obj)
  local lag = self.faults.lag
  if not lag or lag <= 0 or type(obj) ~= "table" then return true end
  local t = obj.changed or obj.created
  if type(t) ~= "number" then return true end
  return self:now() >= t + lag
end

-- fault(name, service) -> the share configured for that fault, scoped first.
function Sim:fault(name, service)
  local s = service and self.faults.scoped[service]
  local v = s and s[name]
  if v == nil then v = self.faults[name] end
  return v
end

-- draw(share) -> true with that probability, from the faults' own PRNG stream.
function Sim:draw(p)
  return p ~= nil and p > 0 and self.fault_rng:float() < p
end

-- delay() -> seconds of latency for one response (uniform in the --latency range).
function Sim:delay()
  local l = self.latency
  if l.max <= 0 then return 0 end
  if l.max == l.min then return l.min end
  return l.min + (l.max - l.min) * self.fault_rng:float()
end

---------------------------------------------------------------------------------------------
-- Authentication.

local function unauthorized(why, audience)
  local aud = type(audience) == "table" and audience[1] or audience
  return {
    status = 401,
    headers = { ["content-type"] = "application/json",
                ["www-authenticate"] = 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="invalid_token", error_description="' ..
                  why .. '"' },
    body = cjson.encode { error = { code = "InvalidAuthenticationToken",
      message = why == "expired" and "Lifetime validation failed, the token is expired." or
                why == "missing" and "Access token is empty." or
                why == "bad_audience" and ("Invalid audience, expected " .. tostring(aud)) or
                "Access token validation failure. Invalid token." } },
  }
end

local function aud_ok(aud, audience)
  if audience == nil then return true end
  local list = type(audience) == "table" and audience or { audience }
  for _, a in ipairs(list) do
    if aud == a or aud == a .. "/" or aud .. "/" == a then return true end
  end
  return false
end

-- auth(req, audience) -> claims | nil, response, why.  Checks "Authorization: Bearer", the
-- signature (the simulator's key), exp against now(), and aud (a string or a list; a trailing
-- "/" is ignored).  why: "missing", "malformed", "bad_signature", "expired", "bad_audience".
-- The 401 response is Graph-shaped; services with another shape build their own from why.
function Sim:auth(req, audience)
  local h = req.headers and req.headers.authorization
  local token = h and h:match("^[Bb]earer%s+(%S+)%s*$")
  if not token then return nil, unauthorized("missing", audience), "missing" end
  local claims, why = self.tokens:verify(token)
  if not claims then return nil, unauthorized(why, audience), why end
  if not aud_ok(claims.aud, audience) then
    return nil, unauthorized("bad_audience", audience), "bad_audience"
  end
  return claims
end

---------------------------------------------------------------------------------------------
-- Request log: a ring of recent entries (GET /_sim/log) and, with --log FILE, JSON lines.
-- Entries never hold bodies or Authorization headers (secrets travel in both).

-- log(entry): entry is a flat table (method, host, path, status, ms, fault, service, ...).
function Sim:log(e)
  e.t = e.t or self:now()
  local n = self.log_n + 1
  self.log_n = n
  self.log_ring[(n - 1) % self.log_max + 1] = e
  if self.log_file then
    local ok, line = pcall(cjson.encode, e)
    if ok then self.log_file:write(line .. "\n") end
  end
end

-- log_entries(since) -> list of entries with sequence numbers > since (oldest first).
function Sim:log_entries(since)
  since = since or 0
  local out = {}
  local first = math.max(since + 1, self.log_n - self.log_max + 1, 1)
  for n = first, self.log_n do
    local e = self.log_ring[(n - 1) % self.log_max + 1]
    local c = { seq = n }
    for k, v in pairs(e) do c[k] = v end
    out[#out + 1] = c
  end
  return out
end

function Sim:close()
  if self.log_file then self.log_file:close() self.log_file = nil end
end

-- Convenience for services.
function Sim:tenant(key) return model.tenant(self.state, key) end
function Sim:guid() return self.rng:guid() end

return M
