-- t2t.graph: Microsoft Graph v1.0 client (wire.md §3).
--
--   local g = graph.new{token = function(refresh) -> bearer | nil, err, http = http.client{...},
--                       cloud = "global", wait_visible = 30, sleep = fn, now = fn}
--   g:get/post/patch/delete(path, body, opts) -> body | true (204) | nil, err
--   for obj in g:items(path, opts) do ... end     every object across @odata.nextLink pages
--   g:all(path, opts) -> list | nil, err
--   g:batch(requests, opts) -> results (request order) | nil, err
--   graph.query{select=, filter=, top=, count=, orderby=, search=, expand=} -> "?$select=..."
--
-- opts: query = {...} (as graph.query), headers = {...}, eventual = true (ConsistencyLevel),
-- wait_visible = seconds (retry 404 while a new object replicates; default: only for ids this
-- client created in the last minute), retry = (passed to the http client), idempotent = true
-- (a PATCH upsert that may be repeated safely: see t2t.http).
-- Errors: {code, message, status, service = "graph", request_id, client_request_id, retryable,
-- retry_after, method, path} with __tostring; never contain tokens or request bodies.
local cjson = require "cjson"

local M = {}

M.HOSTS = require("t2t.clouds").map("graph")

---------------------------------------------------------------------------------------------
-- JSON with arrays: lua-cjson 2.1 writes {} for an empty table; graph.array(t) marks a list so
-- an empty one goes out as [] (groupTypes = graph.array() ...).

M.ARRAY_MT = { __name = "t2t.graph.array" }
function M.array(t) return setmetatable(t or {}, M.ARRAY_MT) end

local EMPTY = "\1[]\1"
local function mark(v, depth)
  if type(v) ~= "table" then return v end
  if depth > 100 then error("graph: JSON nesting too deep", 0) end
  local mt = getmetatable(v)
  if next(v) == nil then
    if mt and mt.__name and mt.__name:find("array", 1, true) then return EMPTY end
    return v
  end
  local out = {}
  for k, x in pairs(v) do out[k] = mark(x, depth + 1) end
  return out
end

function M.encode(v)
  local s = cjson.encode(mark(v, 0))
  if s:find('"\\u0001[]\\u0001"', 1, true) then s = s:gsub('"\\u0001%[%]\\u0001"', "[]") end
  return s
end

---------------------------------------------------------------------------------------------
-- Query strings.

local function pct(s)
  return (tostring(s):gsub("[^%w%-%._~$,()':/@]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- An OData string literal: 'it''s'.
function M.quote(s) return "'" .. tostring(s):gsub("'", "''") .. "'" end

local ADVANCED = { "%f[%w]ne%f[%W]", "%f[%w]not%f[%W]", "endswith%(", "%f[%w]le%f[%W]", "%f[%w]ge%f[%W]" }

-- Does a $filter need ConsistencyLevel: eventual (wire.md §3.13)?
function M.advanced(filter)
  if type(filter) ~= "string" then return false end
  local f = filter:gsub("'[^']*'", "''")
  for _, p in ipairs(ADVANCED) do if f:find(p) then return true end end
  return false
end

-- query{select, filter, top, count, orderby, search, expand, skiptoken} -> "?..." , eventual
local QUERY_KEYS = { select = true, expand = true, filter = true, search = true, orderby = true,
                     count = true, top = true }

function M.query(q)
  if not q then return "", false end
  for k in pairs(q) do
    if not QUERY_KEYS[k] then
      error(string.format("graph: unknown query option '%s' (select, filter, top, count, orderby, " ..
                          "search, expand; without the $)", tostring(k)), 3)
    end
  end
  local parts, eventual = {}, false
  local function add(k, v) parts[#parts + 1] = "$" .. k .. "=" .. pct(v) end
  if q.select then add("select", type(q.select) == "table" and table.concat(q.select, ",") or q.select) end
  if q.expand then add("expand", q.expand) end
  if q.filter then add("filter", q.filter); eventual = eventual or M.advanced(q.filter) end
  if q.search then add("search", q.search); eventual = true end
  if q.orderby then add("orderby", q.orderby); eventual = eventual or q.filter ~= nil end
  if q.count then add("count", "true"); eventual = true end
  if q.top then add("top", math.tointeger(q.top) or q.top) end
  if #parts == 0 then return "", false end
  return "?" .. table.concat(parts, "&"), eventual
end

---------------------------------------------------------------------------------------------
-- Errors.

local Err = {}
Err.__index = Err
Err.__tostring = function(e)
  local s = string.format("graph: %s %s: %s%s", e.method or "?", e.path or "?",
    e.status and (tostring(e.status) .. " ") or "", tostring(e.code))
  if e.message and e.message ~= "" then s = s .. ": " .. e.message end
  if e.request_id then s = s .. " (request-id " .. e.request_id .. ")" end
  return s
end
M.Error = Err

local RETRYABLE = { [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }

local function header(h, name)
  if not h then return nil end
  local v = h[name]
  if v ~= nil then return v end
  for k, x in pairs(h) do if type(k) == "string" and k:lower() == name then return x end end
  return nil
end

-- Build the error object for a response (status >= 400) or a transport error.
function M.parse_error(res, terr, method, path)
  local e = setmetatable({ service = "graph", method = method, path = path and path:gsub("%?.*$", "") }, Err)
  if not res then
    e.code = terr and terr.code or "transport"
    e.message = terr and (terr.message or tostring(terr)) or "request failed"
    e.retryable = terr and terr.retryable or false
    e.request_id = terr and terr.request_id
    return e
  end
  e.status = res.status
  local body = res.body
  if type(body) == "string" and body:sub(1, 1) == "{" then
    local ok, v = pcall(cjson.decode, body)
    if ok then body = v end
  end
  local ge = type(body) == "table" and type(body.error) == "table" and body.error
  e.code = ge and ge.code or ("HTTP" .. tostring(res.status))
  e.message = ge and ge.message or (type(body) == "string" and body:sub(1, 300)) or ""
  local inner = ge and (ge.innerError or ge.innererror)
  e.request_id = header(res.headers, "request-id") or (type(inner) == "table" and inner["request-id"])
  e.client_request_id = header(res.headers, "client-request-id")
  e.retry_after = tonumber(header(res.headers, "retry-after"))
  e.retryable = RETRYABLE[res.status] or false
  return e
end

---------------------------------------------------------------------------------------------
-- Client.

local G = {}
G.__index = G


function M.new(o)
  assert(type(o) == "table", "graph.new: options table expected")
  assert(type(o.token) == "function", "graph.new: token function expected")
  assert(type(o.http) == "table" and o.http.request, "graph.new: http client expected")
  local root = o.root or M.HOSTS[o.cloud or "global"]
  assert(root, "graph.new: unknown cloud " .. tostring(o.cloud))
  return setmetatable({
    token = o.token, http = o.http, root = root, base = root .. "/" .. (o.version or "v1.0"),
    tenant = o.tenant, wait_visible = o.wait_visible or 30, sleep = o.sleep or require("t2t").sleep,
    now = o.now or require("t2t").now, created = {}, batch_attempts = o.batch_attempts or 6,
  }, G)
end

-- A path as people paste it from Graph Explorer or the docs ("/users?$filter=startswith(
-- displayName, 'A')") made a valid URL the way Graph Explorer sends it: each query value
-- percent-encoded (spaces and other characters a URL cannot carry), what is encoded already kept.
local function encode_value(v)
  return (v:gsub("%%(%x%x)", "\0%1"):gsub("[^%w%-%._~$,()':/@\0]", function(c)
    return string.format("%%%02X", c:byte())
  end):gsub("%z(%x%x)", "%%%1"))
end

function M.encode_path(path)
  local p, q = path:match("^([^?]*)%?(.*)$")
  p = (p or path):gsub("[%s\"<>\\^`{|}\127-\255]", function(c) return string.format("%%%02X", c:byte()) end)
  if not q then return p end
  local parts = {}
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    parts[#parts + 1] = k and (encode_value(k) .. "=" .. encode_value(v)) or encode_value(pair)
  end
  return p .. "?" .. table.concat(parts, "&")
end

function G:url(path)
  if type(path) ~= "string" or path == "" then
    error("graph: a path is needed, e.g. g:get(\"/users\") or g:get(\"/organization\")", 0)
  end
  if path:match("^https?://") then return path end
  if path:sub(1, 1) ~= "/" then path = "/" .. path end
  return self.base .. M.encode_path(path)
end

-- Is this path about an object this client created in the last minute (so a 404 is lag)?
function G:_recent(path)
  local now = self.now()
  for id, t in pairs(self.created) do
    if now - t > 60 then self.created[id] = nil
    elseif path:find(id, 1, true) then return true end
  end
  return false
end

local function decode_body(res)
  local b = res.body
  if b == nil or b == "" then return true end
  local ct = header(res.headers, "content-type") or ""
  if ct:find("json", 1, true) or b:sub(1, 1) == "{" then
    local ok, v = pcall(cjson.decode, b)
    if ok then return v end
  end
  return b
end

-- One call with token refresh on 401 and the replication-lag re-read.
function G:request(method, path, body, opts)
  opts = opts or {}
  method = method:upper()
  local qs, eventual = M.query(opts.query)
  local url = self:url(path)
  if qs ~= "" then url = url .. (url:find("?", 1, true) and "&" .. qs:sub(2) or qs) end
  local headers = { Accept = "application/json" }
  if opts.eventual or eventual or url:find("$count", 1, true) or url:find("%24count", 1, true) then
    headers.ConsistencyLevel = "eventual"
  end
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local payload
  if body ~= nil then
    payload = type(body) == "string" and body or M.encode(body)
    headers["Content-Type"] = "application/json"
  end
  local safe, why = require("t2t.http").token_target(url, self.root)
  if not safe then
    return nil, M.parse_error(nil, { code = "UnsafeUrl", message = string.format("refused to send the Graph " ..
      "token to %s (%s): a token goes only over HTTPS to %s", require("t2t.http").redact_url(url), why, self.root) },
      method, path)
  end
  local wait = opts.wait_visible
  if wait == nil and self:_recent(url) then wait = self.wait_visible end
  local deadline = wait and (self.now() + wait) or nil
  local refreshed, delay = false, 0.5
  while true do
    local tok, terr = self.token(refreshed)
    if not tok then
      local e = M.parse_error(nil, { code = "token", message = tostring(terr) }, method, path)
      return nil, e
    end
    headers.Authorization = "Bearer " .. tok
    local res, err = self.http:request { method = method, url = url, headers = headers, body = payload,
                                         retry = opts.retry, timeout = opts.timeout,
                                         idempotent = opts.idempotent }
    if not res then return nil, M.parse_error(nil, err, method, path) end
    if res.status == 401 and not refreshed then
      refreshed = true
    elseif res.status == 404 and deadline and self.now() + delay <= deadline then
      self.sleep(delay)
      delay = math.min(delay * 2, 5)
    elseif res.status >= 400 then
      return nil, M.parse_error(res, nil, method, path)
    else
      local out = decode_body(res)
      if res.status == 201 and type(out) == "table" and type(out.id) == "string" then
        self.created[out.id] = self.now()
        if type(out.appId) == "string" then self.created[out.appId] = self.now() end
      end
      return out
    end
  end
end

function G:get(path, opts) return self:request("GET", path, nil, opts) end
function G:post(path, body, opts) return self:request("POST", path, body or {}, opts) end
function G:patch(path, body, opts) return self:request("PATCH", path, body or {}, opts) end
function G:put(path, body, opts) return self:request("PUT", path, body, opts) end
function G:delete(path, opts) return self:request("DELETE", path, nil, opts) end

-- items(path, opts): iterator over every object of a collection, page by page; raises the err
-- object when a page fails (wrap in pcall, or use g:all).  ConsistencyLevel is resent on every
-- page because Graph does not carry it into nextLink (wire.md §3.13).
function G:items(path, opts)
  opts = opts or {}
  local _, eventual = M.query(opts.query)
  local page_opts = { headers = opts.headers, retry = opts.retry, timeout = opts.timeout,
                      eventual = opts.eventual or eventual or nil, query = opts.query,
                      wait_visible = opts.wait_visible }
  local url, page, i = path, nil, 0
  return function()
    while true do
      if page then
        i = i + 1
        local v = page.value and page.value[i]
        if v ~= nil then return v end
        url = page["@odata.nextLink"]
        if not url then return nil end
        page_opts.query = nil              -- the link carries the query
      end
      local body, err = self:get(url, page_opts)
      if not body then error(err, 0) end
      if type(body) ~= "table" then error(M.parse_error(nil, { code = "BadResponse",
        message = "not a JSON collection" }, "GET", url), 0) end
      self.last_count = body["@odata.count"] or self.last_count
      page, i = body, 0
    end
  end
end

function G:all(path, opts)
  local out = {}
  local ok, err = pcall(function()
    for v in self:items(path, opts) do out[#out + 1] = v end
  end)
  if not ok then return nil, err end
  return out
end

-- count(path, opts): /$count (text/plain) with ConsistencyLevel: eventual.
function G:count(path, opts)
  opts = opts or {}
  local h = { Accept = "text/plain" }
  for k, v in pairs(opts.headers or {}) do h[k] = v end
  local body, err = self:get(path:gsub("/?$", "") .. "/$count", { headers = h, eventual = true, query = opts.query })
  if not body then return nil, err end
  return math.tointeger(tonumber(body)) or tonumber(body)
end

---------------------------------------------------------------------------------------------
-- $batch (wire.md §3.14).

local THROTTLED = { [429] = true, [503] = true, [504] = true }

-- Relative URL for a batch item ("/users/x"), from a path or a full v1.0 URL.
function G:_batch_url(u)
  if u:sub(1, #self.base) == self.base then u = u:sub(#self.base + 1) end
  if u:sub(1, 1) ~= "/" then u = "/" .. u end
  return u
end

-- Send one chunk (<= 20 items); fills results[id].
function G:_send_chunk(chunk, results, opts)
  local reqs = {}
  for i, r in ipairs(chunk) do
    local item = { id = r.id, method = (r.method or "GET"):upper(), url = self:_batch_url(r.url) }
    if r.body ~= nil then
      item.body = r.body
      item.headers = { ["Content-Type"] = "application/json" }
    end
    for k, v in pairs(r.headers or {}) do item.headers = item.headers or {}; item.headers[k] = v end
    local deps = {}
    for _, d in ipairs(r.dependsOn or {}) do
      if chunk.ids[d] then deps[#deps + 1] = d end
    end
    if #deps > 0 then item.dependsOn = deps end
    reqs[i] = item
  end
  local body, err = self:post("/$batch", { requests = reqs }, opts)
  if not body then return nil, err end
  for _, r in ipairs(body.responses or {}) do
    local res = { id = r.id, status = r.status, headers = r.headers or {}, body = r.body }
    if res.status >= 400 then
      res.error = M.parse_error({ status = r.status, headers = res.headers,
        body = type(r.body) == "table" and r.body or nil }, nil, "BATCH", r.id)
      if type(r.body) == "table" and type(r.body.error) == "table" then
        res.error.code = r.body.error.code or res.error.code
        res.error.message = r.body.error.message or res.error.message
        local inner = r.body.error.innerError
        res.error.request_id = res.error.request_id or (type(inner) == "table" and inner["request-id"]) or nil
      end
    end
    results[r.id] = res
  end
  return true
end

-- batch(requests, opts): requests = {{id?, method, url, body?, headers?, dependsOn?}, ...}.
-- Sent in chunks of <= 20 (a dependsOn on an earlier chunk is resolved locally: if that item
-- failed, this one is 424 without being sent); throttled items (429/503/504 per item) and their
-- 424 dependants are re-sent after the largest item Retry-After, up to opts.attempts rounds.
-- Returns the results in request order: {id, status, headers, body, error?}.
function G:batch(requests, opts)
  opts = opts or {}
  local list, by_id = {}, {}
  for i, r in ipairs(requests) do
    local id = r.id and tostring(r.id) or tostring(i)
    assert(not by_id[id], "graph:batch: duplicate id " .. id)
    local copy = { id = id, method = r.method, url = r.url, body = r.body, headers = r.headers,
                   dependsOn = {} }
    for _, d in ipairs(r.dependsOn or {}) do copy.dependsOn[#copy.dependsOn + 1] = tostring(d) end
    by_id[id] = copy
    list[i] = copy
  end
  local results = {}
  local pending = list
  local attempts = opts.attempts or self.batch_attempts
  for round = 1, attempts do
    -- chunks of <= 20 in order
    local i = 1
    while i <= #pending do
      local chunk = { ids = {} }
      while i <= #pending and #chunk < 20 do
        local r = pending[i]
        local dep_failed = false
        for _, d in ipairs(r.dependsOn) do
          if not chunk.ids[d] and results[d] and results[d].status >= 400 then dep_failed = true end
        end
        if dep_failed then
          results[r.id] = { id = r.id, status = 424, headers = {}, error = setmetatable({
            service = "graph", status = 424, code = "FailedDependency",
            message = "a request it depends on failed", method = "BATCH", path = r.id }, Err) }
        else
          chunk[#chunk + 1] = r
          chunk.ids[r.id] = true
        end
        i = i + 1
      end
      if #chunk > 0 then
        local ok, err = self:_send_chunk(chunk, results, opts)
        if not ok then return nil, err end
      end
    end
    -- what to send again: throttled items, and 424s that depend on one of them
    local again, wait = {}, 0
    local retry_ids = {}
    for _, r in ipairs(list) do
      local res = results[r.id]
      if res and THROTTLED[res.status] then
        retry_ids[r.id] = true
        wait = math.max(wait, tonumber(header(res.headers, "retry-after")) or 1)
      end
    end
    for _, r in ipairs(list) do
      local res = results[r.id]
      if res and res.status == 424 then
        for _, d in ipairs(r.dependsOn) do if retry_ids[d] then retry_ids[r.id] = true end end
      end
    end
    for _, r in ipairs(list) do if retry_ids[r.id] then again[#again + 1] = r end end
    if #again == 0 or round == attempts then break end
    self.sleep(math.min(wait, opts.max_retry_after or 120))
    pending = again
  end
  local out = {}
  for i, r in ipairs(list) do
    out[i] = results[r.id] or { id = r.id, status = 0, error = setmetatable({ service = "graph",
      code = "NoResponse", message = "no response for this batch item", method = "BATCH", path = r.id }, Err) }
  end
  return out
end

return M
