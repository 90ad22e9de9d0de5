-- t2t.sim.graph.util: shared pieces of the simulated Graph service (and ARM / Key Vault):
-- JSON that keeps empty arrays, the Graph error shape, times, ids, header lookup, URL decoding.
local cjson = require "cjson"

local M = {}

-- lua-cjson 2.1 encodes every empty table as {}; services put M.EMPTY where the wire has [].
M.EMPTY = "\1[]\1"
local EMPTY_JSON = '"\\u0001[]\\u0001"'

-- Encode a Lua value as JSON, turning M.EMPTY markers into [].
function M.encode(v)
  local s = cjson.encode(v)
  if s:find(EMPTY_JSON, 1, true) then s = s:gsub('"\\u0001%[%]\\u0001"', "[]") end
  return s
end

-- An array for output: an empty one becomes the [] marker.
function M.array(t)
  if t == nil or next(t) == nil then return M.EMPTY end
  return t
end

-- Decode JSON; nil, message on bad input (never raises).
function M.decode(s)
  if s == nil or s == "" then return nil, "empty body" end
  local ok, v = pcall(cjson.decode, s)
  if not ok then return nil, tostring(v) end
  return v
end

-- The request's JSON body: req.json when the handler already decoded it (JSON content type),
-- else req.body decoded here.  nil when there is no body; nil, err when it is not JSON.
function M.json_body(req)
  if req.json ~= nil then return req.json end
  if req.body == nil or req.body == "" then return nil end
  return M.decode(req.body)
end

M.null = cjson.null

-- Case-insensitive header lookup.
function M.header(req, name)
  local h = req.headers
  if not h then return nil end
  local v = h[name]
  if v ~= nil then return v end
  name = name:lower()
  for k, val in pairs(h) do
    if type(k) == "string" and k:lower() == name then return val end
  end
  return nil
end

function M.url_decode(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

function M.path_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

function M.url_encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- Split a request into path and query table; req.query may be a table, a string or absent
-- (then a '?' in req.path is used).
function M.split_query(req)
  local path, qs = req.path or "/", nil
  local i = path:find("?", 1, true)
  if i then path, qs = path:sub(1, i - 1), path:sub(i + 1) end
  local q = {}
  if type(req.query) == "table" then
    for k, v in pairs(req.query) do q[k] = v end
  elseif type(req.query) == "string" and req.query ~= "" then
    qs = (qs and qs .. "&" or "") .. req.query
  end
  if qs then
    for pair in qs:gmatch("[^&]+") do
      local k, v = pair:match("^([^=]*)=?(.*)$")
      q[M.url_decode(k)] = M.url_decode(v)
    end
  end
  return path, q
end

-- Encode a query table back into a string (sorted, for stable links).
function M.query_string(q)
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    out[#out + 1] = M.url_encode(k):gsub("%%24", "$") .. "=" .. M.url_encode(q[k])
  end
  return table.concat(out, "&")
end

-- ISO 8601 UTC times as Graph writes them (t2t.time)
M.iso, M.parse_iso = require("t2t.time").iso, require("t2t.time").parse_iso

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function M.b64(s, url)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chunk = {}
    for j = 3, 0, -1 do
      local k = (n >> (6 * j)) & 63
      chunk[#chunk + 1] = B64:sub(k + 1, k + 1)
    end
    if not b then chunk[3], chunk[4] = "=", "="
    elseif not c then chunk[4] = "=" end
    out[#out + 1] = table.concat(chunk)
  end
  local r = table.concat(out)
  if url then r = r:gsub("=", ""):gsub("+", "-"):gsub("/", "_") end
  return r
end

function M.hex_to_bytes(h)
  return (h:gsub("%X", ""):gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

-- Random identifiers from the simulator's seeded PRNG.
function M.guid(sim) return sim.rng:guid() end

function M.hex32(sim) return (sim.rng:guid():gsub("%-", "")) end

-- Graph's opaque 43-character ids (app role assignments, role assignments).
function M.opaque_id(sim)
  return M.b64(M.hex_to_bytes(sim.rng:guid() .. sim.rng:guid():sub(1, 8)), true):sub(1, 43)
end

function M.is_guid(s)
  return type(s) == "string"
    and s:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

-- Deep copy for storing request data: JSON nulls are dropped (the model never stores them).
function M.copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do
    if x ~= cjson.null then t[k] = M.copy(x) end
  end
  return t
end

function M.contains(list, v)
  if type(list) ~= "table" then return false end
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

-- A Graph error raised inside a handler; graph.lua turns it into the §3.0 response shape.
local GraphError = {}
GraphError.__index = GraphError
GraphError.__tostring = function(e) return e.code .. ": " .. e.message end
M.GraphError = GraphError

function M.fail(status, code, message, headers)
  error(setmetatable({ status = status, code = code, message = message, headers = headers },
    GraphError), 0)
end

function M.is_error(e) return getmetatable(e) == GraphError end

function M.not_found(id)
  M.fail(404, "Request_ResourceNotFound", string.format(
    "Resource '%s' does not exist or one of its queried reference-property objects are not present.",
    tostring(id)))
end

function M.bad(message, code) M.fail(400, code or "Request_BadRequest", message) end

return M
