-- The handler behind fuzz_server: echoes what the server parsed (so every field of the request
-- table is built and read) and lets the query steer the response through everything the server
-- must copy back and send: a status, headers (repeated, odd names), an abort, a body size.
-- No delays: an input must never make the fuzzer wait.
local cjson = require "cjson"

local M = {}

function M.handle(req)
  local a = req.args or {}
  local headers = { ["content-type"] = "application/json" }
  for k, v in pairs(a) do
    if k:sub(1, 2) == "h_" then headers[k:sub(3)] = v end      -- v may be a list: repeated header
  end
  local status = math.tointeger(tonumber(a.status)) or 200
  if status < 100 or status > 599 then status = 400 end
  local body = cjson.encode { method = req.method, path = req.path, query = req.query,
                              headers = req.headers, body = req.body, version = req.version }
  local n = math.tointeger(tonumber(a.size))
  if n and n >= 0 and n <= 65536 then body = string.rep("x", n) end
  local abort = (a.abort == "before" or a.abort == "mid") and a.abort or nil
  return { status = status, headers = headers, body = body, abort = abort }
end

return M
