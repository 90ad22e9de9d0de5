-- Test handler for tests/lua/test_server.lua: echoes the request and injects what the query asks.
--   /echo*?status=N    the request as JSON (status N), with single and multi-valued headers
--   /delay?s=SECONDS   answers "slow" after SECONDS (latency injection)
--   /abort/before, /abort/mid   connection faults;  /error  a handler error;  /bad  a bad result
--   /arg               the handler_arg given to init (JSON if a table);  /empty  204 with no body
local cjson = require "cjson"

local M = {}
local arg_seen

function M.init(arg)
  arg_seen = arg
end

local routes = {}

routes["/echo"] = function(req)
  return {
    status = tonumber(req.args.status) or 200,
    headers = { ["content-type"] = "application/json", ["x-method"] = req.method,
                ["x-multi"] = { "one", "two" } },
    body = cjson.encode(req),
  }
end

routes["/delay"] = function(req)
  return { delay = tonumber(req.args.s) or 0.1, body = "slow " .. (req.args.s or "") }
end

routes["/abort/before"] = function() return { abort = "before" } end
routes["/abort/mid"] = function() return { abort = "mid", body = string.rep("y", 100000) } end
routes["/abort/mid-empty"] = function() return { abort = "mid" } end
routes["/error"] = function() error("boom in handler") end
routes["/bad"] = function() return 42 end
routes["/badstatus"] = function() return { status = 42 } end
routes["/arg"] = function()
  return { body = type(arg_seen) == "table" and cjson.encode(arg_seen) or tostring(arg_seen) }
end
routes["/empty"] = function() return { status = 204 } end
routes["/fast"] = function() return { body = "fast" } end

function M.handle(req)
  local route = routes[req.path] or (req.path:find("^/echo") and routes["/echo"])
  if not route then return { status = 404, body = "no route " .. req.path } end
  return route(req)
end

return M
