-- Test handler for tests/lua/test_http*.lua and tests/bench/bench_http.lua: faults on demand.
-- Runs in the server's own lua_State; state here is per server.
--   /ok                          200 "ok"
--   /echo                        the request as JSON
--   /delay?s=SECONDS             200 after SECONDS (latency)
--   /flaky?key=K&n=N&status=S[&after=RA]   the first N hits of K answer S (with Retry-After RA)
--   /reset?key=K&n=N             the first N hits of K abort in the middle of the body
--   /lost?key=K&n=N              the first N hits of K are served, then the connection closes
--                                before the answer (a response lost after the server acted)
--   /redirect?to=PATH            302 to PATH
--   /auth                        401 unless "Authorization: Bearer good"
--   /limit?max=M&s=SECONDS       at most M in flight (each lasts SECONDS); beyond: 429
--   /hits?key=K                  JSON {n, at = {monotonic arrival times}, ids = {client-request-ids}}
--   /cookies                     two Set-Cookie headers and a repeated header
--   /big?n=BYTES                 a body of n bytes
local cjson = require "cjson"
local now = require("t2t.core.sched").now

local M = {}
local hits = {}        -- key -> {n, at = {}, ids = {}}
local busy = {}        -- /limit: end times of requests in flight
local stats = { limited = 0, served = 0 }

local function hit(req)
  local key = req.args.key or req.path
  local h = hits[key]
  if not h then h = { n = 0, at = {}, ids = {} }; hits[key] = h end
  h.n = h.n + 1
  h.at[h.n] = now()
  h.ids[h.n] = req.headers["client-request-id"] or ""
  return h
end

local routes = {}

routes["/ok"] = function() return { body = "ok" } end

routes["/echo"] = function(req)
  return { headers = { ["content-type"] = "application/json" }, body = cjson.encode(req) }
end

routes["/delay"] = function(req)
  return { delay = tonumber(req.args.s) or 0.1, body = "slow" }
end

routes["/flaky"] = function(req)
  local h = hit(req)
  if h.n <= (tonumber(req.args.n) or 1) then
    return { status = tonumber(req.args.status) or 503,
             headers = { ["retry-after"] = req.args.after }, body = "try later" }
  end
  return { body = "ok after " .. h.n }
end

routes["/reset"] = function(req)
  local h = hit(req)
  if h.n <= (tonumber(req.args.n) or 1) then
    return { abort = "mid", body = string.rep("x", 20000) }
  end
  return { body = "ok after " .. h.n }
end

routes["/lost"] = function(req)
  local h = hit(req)
  if h.n <= (tonumber(req.args.n) or 1) then return { abort = "before" } end
  return { body = "ok after " .. h.n }
end

routes["/redirect"] = function(req)
  return { status = 302, headers = { location = req.args.to or "/ok" }, body = "" }
end

routes["/auth"] = function(req)
  hit(req)
  if req.headers["authorization"] == "Bearer good" then return { body = "welcome" } end
  return { status = 401, body = "expired" }
end

routes["/limit"] = function(req)
  local t = now()
  local max, s = tonumber(req.args.max) or 10, tonumber(req.args.s) or 0.02
  local j = 0
  for i = 1, #busy do
    if busy[i] > t then j = j + 1; busy[j] = busy[i] end
  end
  for i = #busy, j + 1, -1 do busy[i] = nil end
  if #busy >= max then
    stats.limited = stats.limited + 1
    return { status = 429, headers = { ["retry-after"] = req.args.after or "0.05" },
             body = "too many concurrent requests" }
  end
  stats.served = stats.served + 1
  busy[#busy + 1] = t + s
  return { delay = s, body = "ok" }
end

routes["/limitstats"] = function()
  return { body = cjson.encode(stats) }
end

routes["/hits"] = function(req)
  local h = hits[req.args.key] or { n = 0, at = {}, ids = {} }
  return { headers = { ["content-type"] = "application/json" }, body = cjson.encode(h) }
end

routes["/cookies"] = function()
  return { headers = { ["set-cookie"] = { "a=1; Path=/", "b=2" }, ["x-multi"] = { "one", "two" },
                       ["X-Mixed-Case"] = "v" }, body = "" }
end

routes["/big"] = function(req)
  return { body = string.rep("b", tonumber(req.args.n) or 100000) }
end

function M.handle(req)
  local route = routes[req.path]
  if not route then return { status = 404, body = "no route " .. req.path } end
  return route(req)
end

return M
