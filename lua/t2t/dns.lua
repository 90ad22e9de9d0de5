-- t2t.dns: DNS lookups that run inside the scheduler (t2t.core.dns, c-ares) — see docs/dkim.md.
--
--   local dns = require "t2t.dns"
--   dns.configure { servers = "127.0.0.1:5353" }       -- what --dns sets (default: resolv.conf)
--   local r, err = dns.query("selector1._domainkey.contoso.com", "TXT")
--   r.status   "ok" | "nxdomain" | "nodata"            -- answers, all three
--   r.records  the records of the asked type at the end of the CNAME chain
--   r.chain    { {name, target, ttl}, ... } the CNAMEs followed;  r.ttl, r.ad, r.rcode
--   err.code   "servfail" | "timeout" | "refused" | "connrefused" | ...   (no answer at all)
--   dns.txt(name) -> { "joined strings of one RR", ... }, r | nil, err
--
-- Inside a task a lookup yields to the loop, so other tasks (HTTP, other lookups) run
-- meanwhile; outside a task it runs the loop until its answer is in.  CNAMEs are followed here
-- (at most 8), so an authoritative server that answers with the CNAME alone works like a
-- recursive one.
local C = require "t2t.core.dns"
local sched = require "t2t.core.sched"
local t2t = require "t2t"

local M = {}
local YIELD = sched.YIELD

M.parse = C.parse
M.version = C.version
M.MAX_CNAME = 8

local ErrMT = { __tostring = function(e) return e.message end }

-- err(code, fmt, ...) -> an error table in the shape every t2t client uses.
local function err(code, name, qtype, message)
  return setmetatable({ code = code, name = name, type = qtype, service = "dns",
                        retryable = code == "timeout" or code == "servfail" or code == "connrefused",
                        message = message }, ErrMT)
end
M.error = err

local WHY = {
  servfail = "the server failed (SERVFAIL): the zone may be broken or unreachable at its servers",
  timeout = "no answer in time (timeout)",
  refused = "the server refused the query (REFUSED): it is not authoritative for or does not serve this name",
  connrefused = "connection refused: no DNS server listens there",
  notimp = "the server does not implement this query (NOTIMP)",
  badname = "not a valid DNS name",
  closed = "the resolver was closed",
}

local Resolver = {}
Resolver.__index = Resolver

-- resolver{servers, timeout = ms, tries, edns} -> Resolver | nil, err.
function M.resolver(o)
  o = o or {}
  local r, e = C.resolver { servers = o.servers, timeout = o.timeout, tries = o.tries,
                            edns = o.edns, rotate = o.rotate }
  if not r then return nil, err("config", nil, nil, e) end
  return setmetatable({ c = r, servers = o.servers }, Resolver)
end

-- Wait for a core query: yield inside a task, else run a task that does.
local function await(q)
  if sched.current() then
    while not q:done() do coroutine.yield(YIELD, "wait", q) end
  else
    t2t.run(function() while not q:done() do coroutine.yield(YIELD, "wait", q) end end)
  end
  return q:result()
end

-- exchange(packet) -> parsed response, raw | nil, err: one message sent as is (dns.update).
function Resolver:exchange(packet)
  local res = await(self.c:send(packet))
  if res.status ~= "ok" then return nil, err(res.status, nil, nil, WHY[res.status] or res.message) end
  if not res.response then return nil, err("badresp", nil, nil, res.parse_error or "no answer") end
  return res.response, res.raw
end

-- One query, no CNAME following.  -> parsed response | nil, err.
function Resolver:raw_query(name, qtype, opts)
  local q, qerr = self.c:query(name, qtype, opts)
  if not q then return nil, err("badname", name, qtype, qerr) end
  local res = await(q)
  if res.status ~= "ok" then
    return nil, err(res.status, name, qtype, string.format("%s %s: %s", name, qtype,
                                                             WHY[res.status] or res.message))
  end
  if not res.response then
    return nil, err("badresp", name, qtype, string.format("%s %s: %s", name, qtype,
                                                            res.parse_error or "malformed answer"))
  end
  return res.response
end

local function lname(s) return (s:lower():gsub("%.$", "")) end

-- Pick from an answer section the records of type at name, and the CNAME at name if any.
local function pick(answers, name, qtype)
  local out, cname = {}, nil
  for _, rr in ipairs(answers) do
    if lname(rr.name) == name then
      if rr.type == qtype then out[#out + 1] = rr
      elseif rr.type == "CNAME" then cname = rr end
    end
  end
  return out, cname
end

-- Resolver:query(name, type [, {ad = true}]) -> result | nil, err (module header).
function Resolver:query(name, qtype, opts)
  qtype = C.type_name(C.type_code(qtype))
  local want = lname(name)
  local r = { name = want, type = qtype, chain = {}, records = {} }
  local seen = { [want] = true }
  for _ = 0, M.MAX_CNAME do
    local resp, e = self:raw_query(want, qtype, opts)
    if not resp then return nil, e end
    r.rcode, r.ad, r.aa, r.response = resp.rcode_name, resp.ad, resp.aa, resp
    if resp.rcode_name == "NXDOMAIN" then r.status = "nxdomain" break end
    if resp.rcode_name ~= "NOERROR" then
      local code = resp.rcode_name:lower()
      local via = want ~= lname(name) and (" (CNAME target of " .. name .. ")") or ""
      return nil, err(code, want, qtype, string.format("%s %s%s: %s", want, qtype, via, WHY[code] or resp.rcode_name))
    end
    local recs, cname = pick(resp.answers, want, qtype)
    local moved = false
    while #recs == 0 and cname and qtype ~= "CNAME" do   -- follow the chain this answer holds
      local target = lname(cname.target)
      r.chain[#r.chain + 1] = { name = want, target = target, ttl = cname.ttl }
      if seen[target] then return nil, err("loop", name, qtype, name .. ": CNAME loop at " .. target) end
      seen[target], want, moved = true, target, true
      recs, cname = pick(resp.answers, want, qtype)
    end
    if #recs > 0 or not moved then           -- records, or NODATA at the end of the chain
      r.records, r.status = recs, #recs > 0 and "ok" or "nodata"
      break
    end
  end                                        -- else ask again for the chain's new end
  if not r.status then return nil, err("loop", name, qtype, name .. ": more than " .. M.MAX_CNAME .. " CNAMEs") end
  local ttl
  for _, c in ipairs(r.chain) do ttl = math.min(ttl or c.ttl, c.ttl) end
  for _, rr in ipairs(r.records) do ttl = math.min(ttl or rr.ttl, rr.ttl) end
  r.ttl, r.final = ttl, want
  return r
end

-- Resolver:txt(name) -> { text of each TXT RR (its strings joined with nothing) }, result
-- | nil, err.  NXDOMAIN and NODATA give an empty list (result.status says which).
function Resolver:txt(name)
  local r, e = self:query(name, "TXT")
  if not r then return nil, e end
  local out = {}
  for i, rr in ipairs(r.records) do out[i] = rr.text end
  return out, r
end

function Resolver:close() self.c:close() end

---------------------------------------------------------------------------------------------
-- The default resolver: one per state, configured by --dns (t2t.cli) or the simulator.

local default, default_opts = nil, {}

-- configure{servers = "h:p,...", timeout = ms, tries = n}: the default resolver's settings.
function M.configure(o)
  o = o or {}
  if default then default:close() default = nil end
  default_opts = { servers = o.servers, timeout = o.timeout, tries = o.tries, edns = o.edns }
  local r, e = M.resolver(default_opts)
  if not r then return nil, e end
  default = r
  return true
end

-- servers() -> the default resolver's servers ("h:p,...").
function M.servers()
  return M.default():servers_text()
end

function Resolver:servers_text() return self.c:servers() end

-- default() -> the shared resolver (made on first use).
function M.default()
  if not default then default = assert(M.resolver(default_opts)) end
  return default
end

function M.query(name, qtype, opts) return M.default():query(name, qtype, opts) end
function M.txt(name) return M.default():txt(name) end

-- update{...}: RFC 2136 dynamic update with TSIG — see t2t.dns.update.
function M.update(o) return require("t2t.dns.update").send(o) end

return M
