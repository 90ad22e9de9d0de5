-- t2t.sim.handler: the simulator's entry point in the server thread (handler_module of
-- t2t.core.server).  init(arg) seeds or loads the state; handle(req) adds latency, draws
-- faults, routes by Host to a service, encodes table bodies as JSON and logs the request.
-- Contract: docs/simulator.md.
local cjson = require "cjson"
local model = require "t2t.sim.model"
local context = require "t2t.sim.context"
local router = require "t2t.sim.router"

local M = {}

local ARRAY_MT, OBJECT_MT = model.ARRAY_MT, model.OBJECT_MT
local null = cjson.null
local concat, fmt, type, pairs, next = table.concat, string.format, type, pairs, next
local tointeger, huge = math.tointeger, math.huge
local str = cjson.encode                    -- C-speed string escaping

---------------------------------------------------------------------------------------------
-- JSON for response bodies.  cjson 2.1 cannot tell an empty array from an empty object, so:
-- an empty table is [] unless it has OBJECT_MT (model.object()); a table with t[1] or
-- ARRAY_MT is an array; cjson.null is null.  Keys of objects are sorted only when asked.

local encode_value

local function encode_table(t, buf, n, depth)
  if depth > 200 then error("json: nesting too deep (cycle?)", 0) end
  local mt = getmetatable(t)
  if mt ~= OBJECT_MT and (t[1] ~= nil or mt == ARRAY_MT or next(t) == nil) then
    local len = #t
    if len == 0 then buf[n + 1] = "[]" return n + 1 end
    n = n + 1; buf[n] = "["
    for i = 1, len do
      if i > 1 then n = n + 1; buf[n] = "," end
      n = encode_value(t[i], buf, n, depth + 1)
    end
    n = n + 1; buf[n] = "]"
    return n
  end
  n = n + 1; buf[n] = "{"
  local first = true
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) ~= "function" then
      if not first then n = n + 1; buf[n] = "," end
      first = false
      n = n + 1; buf[n] = str(k)
      n = n + 1; buf[n] = ":"
      n = encode_value(v, buf, n, depth + 1)
    end
  end
  n = n + 1; buf[n] = "}"
  return n
end

encode_value = function(v, buf, n, depth)
  local tv = type(v)
  if tv == "string" then
    n = n + 1; buf[n] = str(v)
  elseif tv == "number" then
    local i = tointeger(v)
    n = n + 1
    if i and (v >= -2^53 and v <= 2^53) then buf[n] = fmt("%d", i)
    elseif v ~= v or v == huge or v == -huge then buf[n] = "null"
    else buf[n] = fmt("%.17g", v) end
  elseif tv == "boolean" then
    n = n + 1; buf[n] = v and "true" or "false"
  elseif tv == "table" then
    n = encode_table(v, buf, n, depth)
  elseif v == null or v == nil then
    n = n + 1; buf[n] = "null"
  else
    error("json: cannot encode a " .. tv, 0)
  end
  return n
end

-- json_encode(value) -> JSON text (the rules above).
function M.json_encode(v)
  local buf = {}
  local n = encode_value(v, buf, 0, 0)
  return concat(buf, "", 1, n)
end

---------------------------------------------------------------------------------------------
-- Set-up.

local sim

-- Whether p names something (never opened here: opening a FIFO to look would block).
local function file_exists(p)
  return require("t2t.core.fs").mode(p) ~= nil
end

-- A user error for the main thread: an object whose __tostring is one line, so the server's
-- message handler adds no traceback.
local function user_error(pattern, ...)
  local msg = string.format(pattern, ...)
  error(setmetatable({}, { __tostring = function() return msg end }), 0)
end

-- load_state(path) -> state, or raises one line naming the file and what to do.
local function load_state(path)
  local fix = "give another file, or move it away to start from a freshly seeded state"
  local text, rerr = require("t2t.files").read(path, "sim_state")
  if not text then user_error("simulator state file %s: %s -- %s", path, tostring(rerr):gsub("^cannot read [^:]*: ", ""), fix) end
  if not text:find("%S") then user_error("simulator state file %s is empty -- %s", path, fix) end
  local state, err = model.decode_state(text)
  if not state then
    user_error("%s is not a simulator state file (%s) -- %s", path, tostring(err):gsub(": .*", ""), fix)
  end
  return state
end

-- init(arg): arg = {users, seed, state = path, faults, latency, log = path, target_users,
-- scenario = path | table}.  Loads the state file when it exists, else seeds the pair and applies
-- the scenario.  Raises on a bad option (the
-- server then refuses to start with the message).
function M.init(arg)
  arg = arg or {}
  local state, loaded
  if arg.state and arg.state ~= "" then model.sweep(arg.state) end   -- a killed save's temps
  if arg.state and arg.state ~= "" and file_exists(arg.state) then
    state, loaded = load_state(arg.state), true
  else
    state = require("t2t.sim.seed").pair { users = arg.users or 50, seed = arg.seed or 1,
                                            target_users = arg.target_users }
  end
  sim = context.new { state = state, seed = arg.seed or state.seed, faults = arg.faults,
                      latency = arg.latency, log = arg.log }
  sim.options = arg
  sim.json_encode = M.json_encode
  M.sim = sim
  if arg.scenario and not loaded then M.scenario(arg.scenario) end
  if tonumber(arg.speed) then            -- the migration engine's speed factor (t2t.sim.exo.moves)
    state.migration = state.migration or {}
    state.migration.speed = tonumber(arg.speed)
  end
  if arg.dns then            -- a real DNS server for the tenants' domains (t2t.sim.dnsworld)
    local ok, err = require("t2t.sim.dnsworld").start(sim)
    if not ok then sim.dns_error = err end
  end
  return sim
end

-- scenario(path | table): apply a population scenario (t2t.sim.population) to a freshly seeded
-- state; raises with the step that failed (the server then refuses to start with the message).
function M.scenario(sc)
  if type(sc) == "string" then
    local text, rerr = require("t2t.files").read(sc, "data")
    if not text then user_error("scenario: %s", tostring(rerr)) end
    local ok, doc = pcall(cjson.decode, text)
    if not ok then user_error("scenario %s: not JSON: %s", sc, tostring(doc)) end
    sc = doc
  end
  local ok, err = require("t2t.sim.population").apply(sim, sc)
  if not ok then user_error("scenario: %s", tostring(err)) end
end

---------------------------------------------------------------------------------------------
-- Faults.

local STATUS_ORDER = { "429", "500", "502", "503", "504" }
local REASON = { ["429"] = "Too Many Requests", ["500"] = "Internal Server Error",
                 ["502"] = "Bad Gateway", ["503"] = "Service Unavailable", ["504"] = "Gateway Timeout" }

-- One draw per request decides "reset" or an injected status (so the sequence of faults
-- depends only on the seed and the order of requests).
local function draw_fault(service)
  local u = sim.fault_rng:float()
  local acc = sim:fault("reset", service) or 0
  if u < acc then return "reset" end
  for _, code in ipairs(STATUS_ORDER) do
    local p = sim:fault(code, service)
    if p then
      acc = acc + p
      if u < acc then return code end
    end
  end
  return nil
end

-- The injected status in the service's own shape when it offers fault(sim, req, status),
-- else a plain one.
local function fault_response(mod, req, code)
  local status = tonumber(code)
  if mod and mod.fault then
    local r = mod.fault(sim, req, status)
    if r then return r end
  end
  local ra = tostring(math.floor(sim.faults.retry_after or (status == 429 and 2 or 1)))
  return { status = status,
           headers = { ["content-type"] = "text/plain", ["retry-after"] = ra },
           body = REASON[code] }
end

local MUTATING = { POST = true, PUT = true, PATCH = true, DELETE = true }

-- Query parameters that may carry a secret are masked in the log.
local SECRET_PARAM = { client_secret = true, client_assertion = true, password = true, code = true,
                       refresh_token = true, access_token = true, assertion = true, sig = true,
                       secret = true, id_token = true, device_code = true, key = true }
local function redact_query(q)
  if not q or q == "" then return nil end
  return (q:gsub("([^&=]+)=([^&]*)", function(k, v)
    if SECRET_PARAM[k:lower()] then return k .. "=***" end
    return k .. "=" .. v
  end))
end

---------------------------------------------------------------------------------------------
-- --log-bodies: each request's JSON (or form) body in its log line, every secret masked, so an
-- admin can see what a runbook sent and a checker can replay it.  A value is masked ("***")
-- when its key names a secret (any depth), when it is an EXO parameter of a secret type
-- (SecureString, PSCredential), or when it is the value of a Key Vault secret.

local SECRET_KEY = {
  password = true, passwordprofile = true, newpassword = true, currentpassword = true,
  secret = true, secrettext = true, clientsecret = true, client_secret = true,
  client_assertion = true, assertion = true, proof = true, key = true, privatekey = true,
  cer = true, pfx = true, refresh_token = true, access_token = true, id_token = true,
  token = true, device_code = true, code = true, credentials = true, credential = true,
  authorization = true, sig = true, oauthcode = true, servicepassword = true,
}
local EXO_SECRET_TYPES = { SecureString = true, PSCredential = true }

local function mask(v, extra, depth)
  if type(v) ~= "table" then return v end
  if depth > 20 then return "***" end
  local out = getmetatable(v) == ARRAY_MT and model.array() or {}
  for k, x in pairs(v) do
    local key = type(k) == "string" and k:lower():gsub("@.*$", "")
    if key and (SECRET_KEY[key] or (extra and extra[key])) and x ~= null then
      out[k] = "***"
    else
      out[k] = mask(x, extra, depth + 1)
    end
  end
  return out
end

local function parse_form(s)
  local out = {}
  for pair in s:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local function dec(x)
      return (x:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
    end
    if k ~= "" then out[dec(k)] = dec(v) end
  end
  return out
end

-- The names (lower case) of an EXO cmdlet's secret-typed parameters.
local function exo_secret_params(doc)
  local input = type(doc) == "table" and doc.CmdletInput
  local ok, exo = pcall(require, "t2t.exo")
  if type(input) ~= "table" or not ok then return nil end
  local _, spec = exo.cmdlet(tostring(input.CmdletName))
  local out = {}
  for name, d in pairs(spec and spec.params or {}) do
    if EXO_SECRET_TYPES[d.t] then out[name:lower()] = true end
  end
  return out
end

-- logged_body(service, req) -> the request body for the log, secrets masked | nil.
function M.logged_body(service, req)
  local body = req.body
  if type(body) ~= "string" or body == "" then return nil end
  local ct = (req.headers and req.headers["content-type"] or ""):lower()
  local v = req.json
  if v == nil and ct:find("x-www-form-urlencoded", 1, true) then v = parse_form(body) end
  if v == nil then return "(" .. #body .. " bytes, " .. (ct ~= "" and ct or "no content type") .. ")" end
  local extra
  if service == "exo" then extra = exo_secret_params(v)
  elseif service == "keyvault" then extra = { value = true } end
  return mask(v, extra, 0)
end

local function traceback(e)
  return debug.traceback(tostring(e), 2)
end

---------------------------------------------------------------------------------------------
-- handle(req) -> response for t2t.core.server.

function M.handle(req)
  if not sim then M.init({}) end
  local t_start = sim:now()
  local host = router.host_of(req)
  req.host = host
  local path = req.path
  local service = router.service(host, path)
  local body = req.body
  if body and body ~= "" then
    local ct = req.headers["content-type"]
    if ct and ct:find("json", 1, true) then
      local ok, v = pcall(cjson.decode, body)
      if ok then req.json = v end
    end
  end
  local delay, fault = 0, nil
  if service ~= "control" then
    delay = sim:delay()
    req.delay = delay
    if service then fault = draw_fault(service) end
  end
  local mod, resp, err
  if service then mod, err = router.module(service) end
  if fault == "reset" then
    resp = { abort = "before" }
  elseif fault then
    resp = fault_response(mod, req, fault)
  elseif not service then
    resp = { status = 404, headers = { ["content-type"] = "text/plain" },
             body = "t2t sim: no simulated service for host '" .. host .. "'" }
  elseif not mod then
    resp = { status = 501, headers = { ["content-type"] = "text/plain" },
             body = "t2t sim: service '" .. service .. "' is not available: " .. tostring(err) }
  else
    local ok, r = xpcall(mod.handle, traceback, sim, req)
    if not ok then
      err = r
      resp = { status = 500, headers = { ["content-type"] = "text/plain" },
               body = "t2t sim: handler error in " .. service .. ": " .. tostring(r) }
      if sim.options.log_errors ~= false then io.stderr:write("t2t sim: ", tostring(r), "\n") end
    elseif type(r) ~= "table" then
      resp = { status = 500, headers = { ["content-type"] = "text/plain" },
               body = "t2t sim: service " .. service .. " returned " .. type(r) }
    else
      resp = r
    end
    -- the change is applied, then the response is lost (the client sees a reset)
    if ok and service ~= "control" and MUTATING[req.method] and resp.status and resp.status < 400
       and sim:draw(sim:fault("lost", service)) then
      fault = "lost"
      resp.abort = "before"
    elseif ok and service ~= "control" and sim:draw(sim:fault("mid", service)) then
      fault = "mid"
      resp.abort = "mid"
    end
  end
  local b = resp.body
  if type(b) == "table" then
    local h = resp.headers or {}
    resp.headers = h
    if not (h["content-type"] or h["Content-Type"]) then h["content-type"] = "application/json" end
    resp.body = M.json_encode(b)
  end
  if delay > 0 and (resp.delay or 0) < delay then resp.delay = delay end
  local e = { method = req.method, host = host, path = path, service = service or "none",
              query = redact_query(req.query),
              status = resp.abort == "before" and 0 or (resp.status or 200), fault = fault,
              ms = math.floor((sim:now() - t_start + (resp.delay or 0)) * 1000 + 0.5),
              error = err and tostring(err):match("^[^\n]*") or nil,
              crid = req.headers and req.headers["client-request-id"] or nil }
  if type(req.note) == "table" then           -- what the service adds (e.g. the EXO cmdlet)
    for k, v in pairs(req.note) do if e[k] == nil then e[k] = v end end
  end
  if sim.options.log_bodies and service ~= "control" then e.body = M.logged_body(service, req) end
  sim:log(e)
  M.persist(service, req, e)
  return resp
end

-- With a state file, a change is durable before it is answered, as in the real cloud: the state
-- is saved (atomically) after every request that may have changed it -- a write that a service
-- accepted, its response lost or not -- so a client killed after an answer never holds
-- something (a secret, an id) that a later simulator does not know.
function M.persist(service, req, e)
  local path = sim.options and sim.options.state
  if not path or path == "" or not MUTATING[req.method] or service == "control" or service == "login"
     or e.status >= 400 then return end
  local cmdlet = e.cmdlet
  if type(cmdlet) == "string" and (cmdlet:match("^Get%-") or cmdlet:match("^Test%-")) then return end
  local ok, err = model.save(sim.state, path)
  if not ok then io.stderr:write("t2t sim: cannot save the state: ", tostring(err), "\n") end
end

return M
