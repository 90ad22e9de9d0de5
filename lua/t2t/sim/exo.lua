-- t2t.sim.exo: the simulated Exchange Online admin API — POST /adminapi/beta/{tenant}/InvokeCommand
-- (wire.md §2, §6.2).  handle(sim, req) per docs/simulator.md: routes, authenticates, applies
-- Exchange RBAC, binds the parameters against exo-cmdlets.json like EXO (t2t.exo.bind with
-- prefix-matched enums), dispatches to the cmdlet areas in t2t.sim.exo.*, pages the result.
local cjson = require "cjson"
local exo = require "t2t.exo"
local model = require "t2t.sim.model"
local U = require "t2t.sim.exo.util"
local authz = require "t2t.sim.authz"
local output = require "t2t.sim.exo.output"

local M = {}

M.AUDIENCE = "https://outlook.office365.com"
M.AREAS = { "recipients", "orgrel", "groups", "migration", "dkim", "permissions", "holds",
            "contacts", "rbac", "mailbox" }
M.RATE_LIMIT = 30000                       -- Rate-Limit-Limit as captured (wire.md §2.5)
M.NUL_BODY = string.rep("\0", 20)

local handlers
local function load_handlers()
  if handlers then return end
  handlers = {}
  for _, a in ipairs(M.AREAS) do
    for name, fn in pairs(require("t2t.sim.exo." .. a)) do
      if type(fn) == "function" and name:find("-", 1, true) then
        handlers[name] = fn
      end
    end
  end
end

-- The cmdlets this simulator implements (sorted).
function M.cmdlets()
  load_handlers()
  local out = {}
  for k in pairs(handlers) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local JSON_CT = "application/json;odata.metadata=minimal;odata.streaming=true;" ..
                "IEEE754Compatible=false;charset=utf-8"

local function rate_headers(sim, t, h)
  local now = sim:now()
  local rl = t.sim_rate or {}                 -- not persisted meaningfully; harmless if saved
  local window = math.floor(now / 3600)
  if rl.window ~= window then rl.window, rl.used = window, 0 end
  rl.used = rl.used + 1
  t.sim_rate = rl
  h["Rate-Limit-Limit"] = tostring(M.RATE_LIMIT)
  h["Rate-Limit-Remaining"] = tostring(math.max(0, M.RATE_LIMIT - rl.used))
  h["Rate-Limit-Reset"] = os.date("!%Y-%m-%dT%H:%M:%S.000Z", (window + 1) * 3600)
  return h
end

local function headers(sim, t, request_id, extra)
  local h = { ["Content-Type"] = JSON_CT, ["Request-Id"] = request_id,
              ["X-Exchangeversion"] = "Version 15.20 (Build 7587.36)" }
  if t then rate_headers(sim, t, h) end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

local function error_response(sim, t, rid, status, typ, text)
  return { status = status, body = U.error_body(status, typ, text),
           headers = headers(sim, t, rid, { ["x-ExceptionType"] = typ:match("[^.]+$") }) }
end

-- The 403 the gateway answers for a missing directory role or an unknown cmdlet (wire.md §2.7).
local function nul_403()
  return { status = 403, headers = { ["Content-Encoding"] = "gzip",
                                     ["Content-Type"] = "application/json" }, body = M.NUL_BODY }
end

---------------------------------------------------------------------------------------------
-- Concurrency: requests in flight per tenant.  The server runs the handler on one Lua thread,
-- so a request is "in flight" while its response is being delayed: the core handler passes the
-- latency it will add as req.delay (seconds); a request counts until now + req.delay.  Above
-- sim.faults.exo_concurrency (default 3) the gateway's plain-text 429 is answered.
local inflight = setmetatable({}, { __mode = "k" })

local function admit(sim, t, delay)
  local faults = sim.faults or {}
  local limit = tonumber(faults.exo_concurrency) or 3
  if not delay or delay <= 0 then return true end
  local now = sim:now()
  local l = inflight[t] or {}
  local keep = {}
  for _, e in ipairs(l) do if e > now then keep[#keep + 1] = e end end
  if #keep >= limit then inflight[t] = keep; return false end
  keep[#keep + 1] = now + delay
  inflight[t] = keep
  return true
end

---------------------------------------------------------------------------------------------
-- Paging.  Get-Mailbox, Get-Recipient, Get-MailUser and Get-User return lazy listings over the
-- recipient index (O(page) per page, lazy_page below).  Other listings are sorted once (Name,
-- then Guid) and kept for their next pages; the skip token is the offset.  A few recent
-- listings are cached per tenant and request body.
local snapshots = {}
local SNAP_MAX = 8

local function sort_key(o)
  return string.lower(tostring(o.Name or o.Identity or o.Domain or o.DomainName or "")) ..
         "\0" .. tostring(o.Guid or "")
end

local function snapshot(key, list, fresh)
  if not fresh then
    for _, s in ipairs(snapshots) do if s.key == key then return s.list end end
  end
  local keys = {}
  for _, o in ipairs(list) do keys[o] = sort_key(o) end
  table.sort(list, function(a, b) return keys[a] < keys[b] end)
  table.insert(snapshots, 1, { key = key, list = list })
  if #snapshots > SNAP_MAX then snapshots[#snapshots] = nil end
  return list
end

local function page_size(req)
  local prefer = req.headers and (req.headers.prefer or req.headers.Prefer) or ""
  local n = tonumber(prefer:match("odata%.maxpagesize%s*=%s*(%d+)"))
  if not n or n < 1 then return 1000 end
  return math.min(n, 1000)
end

local function header(req, name)
  local h = req.headers or {}
  local v = h[name]
  if v then return v end
  name = name:lower()
  for k, x in pairs(h) do if k:lower() == name then return x end end
end

-- A query parameter: the server gives req.args (decoded table) and req.query (raw string).
local function query_value(req, key)
  for i = 1, 2 do
    local q = i == 1 and req.args or req.query
    if type(q) == "table" and q[key] ~= nil then
      local v = q[key]
      return type(v) == "table" and v[1] or v
    end
  end
  if type(req.query) == "string" then
    for k, v in req.query:gmatch("([^&=?]+)=([^&]*)") do
      if k:gsub("%%24", "$") == key then return (v:gsub("%%(%x%x)", function(h)
        return string.char(tonumber(h, 16)) end)) end
    end
  end
end

-- The number of objects a listing may return: -ResultSize (an integer, or Unlimited), else
-- 1000 for cmdlets that take -ResultSize (the service's default, with its warning).
local function result_limit(c, params)
  local rs = params.ResultSize
  if math.type(rs) == "integer" then return rs, false end
  if c.params.ResultSize and rs == nil then return 1000, true end
  return math.huge, false
end

-- One page of a listing the handler returned whole: sorted once per request body (kept for the
-- next pages); the skip token is the offset.  Returns the page's objects, the next token | nil.
local function snapshot_page(req, t, ctx, list, c, params)
  local limit, default = result_limit(c, params)
  limit = math.min(limit, #list)
  if default and #list > 1000 then ctx.warnings[#ctx.warnings + 1] = exo.RESULT_SIZE_WARNING end
  local offset = math.tointeger(tonumber(query_value(req, "$skiptoken") or "0")) or 0
  if #list > 1 then list = snapshot(t.id .. "\0" .. (req.body or ""), list, offset == 0) end
  local last = math.min(offset + page_size(req), limit)
  local items = {}
  for i = offset + 1, last do items[#items + 1] = list[i] end
  return items, last < limit and tostring(last) or nil
end

local function hex(s) return (s:gsub(".", function(ch) return string.format("%02x", ch:byte()) end)) end
local function unhex(s) return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)) end

-- One page of a lazy listing (t2t.sim.exo.util.listing): the skip token carries how many were
-- served and the last key, so a page costs O(page) whatever the tenant's size.
local function lazy_page(req, ctx, listing, c, params)
  local limit, default = result_limit(c, params)
  local served, after = 0, nil
  local tok = query_value(req, "$skiptoken")
  if tok then
    local n, k = tok:match("^(%d+)%.(%x*)$")
    served, after = math.tointeger(tonumber(n)) or 0, k and unhex(k) or nil
  end
  local want = math.min(page_size(req), limit - served)
  if want <= 0 then return {}, nil end
  local items, last, more = listing.seek(after, want, served + want >= limit)
  served = served + #items
  if more and served >= limit then
    if default then ctx.warnings[#ctx.warnings + 1] = exo.RESULT_SIZE_WARNING end
    more = false
  end
  return items, (more and last) and (served .. "." .. hex(last)) or nil
end

---------------------------------------------------------------------------------------------

local function run(sim, req, t, claims, tenant_key, rid)
  local doc = req.json
  if doc == nil and req.body and #req.body > 0 then
    local ok, d = pcall(cjson.decode, req.body)
    doc = ok and d or nil
  end
  local input = type(doc) == "table" and doc.CmdletInput
  if type(input) ~= "table" or type(input.CmdletName) ~= "string" then
    return error_response(sim, t, rid, 400, "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
      "The request body must be {\"CmdletInput\":{\"CmdletName\":...,\"Parameters\":{...}}}.")
  end
  local name = exo.cmdlet(input.CmdletName)
  req.note = { cmdlet = name or input.CmdletName }   -- the request log names the cmdlet
  if not name or not handlers[name] then return nul_403() end
  -- Exchange RBAC: the one check (t2t.sim.authz); the role that allowed it goes to the log
  local role = authz.exo(t, claims, name)
  if not role then return nul_403() end
  req.note.exo_role, req.note.tid = role, t.id
  local params = {}
  for k, v in pairs(type(input.Parameters) == "table" and input.Parameters or {}) do
    if type(k) == "string" and not k:find("@", 1, true) then params[k] = v end
  end
  local b, berr = exo.bind(name, params, { prefix_enums = true })
  if not berr and b.params.WhatIf then
    return { status = 200, headers = headers(sim, t, rid),
             body = '{"@adminapi.warnings":[],"value":[]}' }
  end
  if not b then
    return error_response(sim, t, rid, 400, berr.exception, berr.message:gsub("^[^:]+: ", ""))
  end
  -- SecureString values arrive RSA-encrypted with the module's public key (wire.md §2.4); one
  -- that does not open with the simulated module's key is refused [inferred exception and text]
  local spec = select(2, exo.cmdlet(name))
  for pname, v in pairs(b.params) do
    local d = spec.params[pname]
    if d and d.t == "SecureString" then
      local plain = model.open_securestring(sim.state, v)
      if not plain then
        return error_response(sim, t, rid, 400, "System.Management.Automation.ParameterBindingException",
          "Cannot process argument transformation on parameter '" .. pname .. "'. The value is not a "
          .. "SecureString encrypted with the Exchange Online module's public key.")
      end
      b.params[pname] = plain
    end
  end
  local ctx = { sim = sim, state = sim.state, t = t, now = sim:now(), claims = claims,
                cmdlet = name, warnings = {} }
  local ok, list, presenter = pcall(handlers[name], ctx, b.params)
  if not ok then
    local e = list
    if type(e) == "table" and e.exo_fail then
      return error_response(sim, t, rid, e.status, e.exception, e.text)
    end
    if sim.log then sim:log { service = "exo", cmdlet = name, error = tostring(e) } end
    return error_response(sim, t, rid, 500, "System.Exception", "Error executing cmdlet: " .. tostring(e))
  end
  list = list or {}
  local sel = query_value(req, "$select")
  local sel_list
  if sel then
    sel_list = {}
    for p in sel:gmatch("[^,%s]+") do sel_list[#sel_list + 1] = p end
  end
  local c = select(2, exo.cmdlet(name))
  local items, next_token
  if list.lazy then
    items, next_token = lazy_page(req, ctx, list, c, b.params)
  else
    items, next_token = snapshot_page(req, t, ctx, list, c, b.params)
  end
  local page = {}
  for i, o in ipairs(items) do
    local bag = presenter and presenter(o)
    if not bag then                      -- never change the stored object itself
      bag = {}
      for k, v in pairs(o) do bag[k] = v end
    end
    page[i] = U.select(output.conform(name, bag, o), sel_list)
  end
  local host = req.host or "outlook.office365.com"
  local out = {
    ["@odata.context"] = "https://" .. host .. "/adminapi/beta/" .. tenant_key ..
      "/$metadata#Collection(Exchange.GenericHashTable)",
    ["adminapi.warnings@odata.type"] = "#Collection(String)",
    ["@adminapi.warnings"] = #ctx.warnings > 0 and ctx.warnings or exo.EMPTY_ARRAY_SENTINEL,
    value = #page > 0 and page or exo.EMPTY_ARRAY_SENTINEL,
  }
  if next_token then
    out["@odata.nextLink"] = "https://" .. host .. "/adminapi/beta/" .. tenant_key ..
      "/InvokeCommand?" .. (sel and ("$select=" .. sel .. "&") or "") .. "$skiptoken=" .. next_token
  end
  return { status = 200, headers = headers(sim, t, rid), body = exo.json_encode(out) }
end

-- Control API /_sim/svc/exo/migration: GET -> {speed}; POST {speed = N} sets the migration
-- engine's speed factor (t2t.sim.exo.moves), kept in the state.
function M.control(sim, req, rest)
  if rest ~= "/migration" then
    return { status = 404, body = { error = { code = "NotFound", message = "exo control: /migration only" } } }
  end
  local mig = sim.state.migration or {}
  if req.method == "POST" then
    local sp = type(req.json) == "table" and tonumber(req.json.speed)
    if not sp or sp <= 0 then
      return { status = 400, body = { error = { code = "BadRequest", message = "give speed (a positive number)" } } }
    end
    mig.speed = sp
    sim.state.migration = mig
    for _, t in pairs(sim.state.tenants) do require("t2t.sim.exo.moves").touch(t) end
  end
  return { status = 200, body = { speed = require("t2t.sim.exo.moves").speed(sim.state) } }
end

-- handle(sim, req) -> {status, headers, body}.
function M.handle(sim, req)
  load_handlers()
  local rid = header(req, "client-request-id") or (sim.rng and sim.rng:guid()) or "0"
  local path = req.path or ""
  local tenant_key = path:match("^/[Aa][Dd][Mm][Ii][Nn][Aa][Pp][Ii]/[Bb][Ee][Tt][Aa]/([^/]+)/[Ii]nvoke[Cc]ommand$")
  if not tenant_key then
    return { status = 404, headers = { ["Content-Type"] = "application/json" },
             body = '{"error":{"code":"NotFound","message":"The requested resource does not exist."}}' }
  end
  if req.method ~= "POST" then
    return { status = 405, headers = { ["Allow"] = "POST", ["Content-Type"] = "application/json" },
             body = '{"error":{"code":"MethodNotAllowed","message":"The requested method is not allowed."}}' }
  end
  local claims, resp = sim:auth(req, M.AUDIENCE)
  if not claims then return resp end
  local t = model.tenant(sim.state, tenant_key)
  -- Without Exchange.ManageAsApp (or delegated Exchange.Manage) the gateway answers 401
  -- (wire.md §2.10: "neither grant gives 401").
  if not authz.exo_gateway(claims) or not t or claims.tid ~= t.id then
    return { status = 401, headers = { ["WWW-Authenticate"] =
      'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", trusted_issuers="00000001-0000-0000-c000-000000000000@*", token_types="app_asserted_user_v1 service_asserted_app_v1", error="invalid_token"' },
      body = "" }
  end
  if not admit(sim, t, tonumber(req.delay)) then
    return { status = 429, headers = { ["Content-Type"] = "text/plain", ["Retry-After"] = "1" },
             body = "You have reached the maximum number of concurrent requests per tenant. " ..
                    "Please wait and try again" }
  end
  return run(sim, req, t, claims, tenant_key, rid)
end

return M
