-- t2t.exo: Exchange Online cmdlets over the admin API's InvokeCommand (wire.md §2).
--
--   local ex = require("t2t.exo").new{tenant = tid, token = fn, http = client, cloud = "global"}
--   local list, warnings = ex:invoke("Get-Mailbox", {Identity = "x", ResultSize = "Unlimited"})
--   local list = ex.cmd["Get-Mailbox"]{ResultSize = 10}
--
-- Parameters are bound against t2t.exo_cmdlets (generated from exo-cmdlets.json) before anything
-- is sent; the same binder serves the simulator (M.bind), so both speak from the reference.
local cjson = require "cjson"

local M = {}

-- Exchange admin API host per cloud (t2t.clouds).
M.HOSTS = require("t2t.clouds").map("exo")
M.ANCHOR_MAILBOX = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}"
-- Exception names the EXO module retries (wire.md §2.7).
M.TRANSIENT = {
  DCOverloadedException = true, SuitabilityDirectoryException = true, ServerInMMException = true,
  ADServerSettingsChangedException = true, StorageTransientException = true,
}
M.CONCURRENCY_TEXT = "You have reached the maximum number of concurrent requests per tenant"
M.NS_PS = "System.Management.Automation."
M.RESULT_SIZE_WARNING = "There are more results available than are currently displayed. " ..
  "To view them, increase the value for the ResultSize parameter."

local GUID_PAT = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
M.GUID_PAT = GUID_PAT

-- Errors are plain tables; tostring gives the message.
local ErrMT = { __tostring = function(e) return e.message or e.code or "exo error" end }
local function new_err(t) t.service = "exo"; return setmetatable(t, ErrMT) end
M.new_err = new_err

---------------------------------------------------------------------------------------------
-- Binding: cmdlet + parameters -> parameter set, canonical names, checked values.

local cmdlets, lower_cmdlets      -- loaded on first use: startup time matters
local function data()
  if not cmdlets then
    cmdlets = require "t2t.exo_cmdlets"
    lower_cmdlets = {}
    for name, c in pairs(cmdlets) do
      lower_cmdlets[name:lower()] = name
      local by = {}                -- lower name or alias -> canonical parameter name
      local required = {}          -- set index -> its required parameters (binding reads this)
      for i = 1, #c.sets do required[i] = {} end
      for p, d in pairs(c.params) do
        by[p:lower()] = p
        for _, a in ipairs(d.a or {}) do by[a:lower()] = p end
        if d.v then
          d.vl = {}
          for _, v in ipairs(d.v) do d.vl[v:lower()] = v end
        end
        for _, i in ipairs(d.r or {}) do table.insert(required[i], p) end
        if d.s then
          d.in_sets = {}
          for _, i in ipairs(d.s) do d.in_sets[i] = true end
        end
      end
      c.by_lower, c.required = by, required
    end
  end
  return cmdlets
end

-- The canonical cmdlet name and its data, or nil.
function M.cmdlet(name)
  data()
  local canon = type(name) == "string" and lower_cmdlets[name:lower()]
  if canon then return canon, cmdlets[canon] end
end

local function in_set(d, i)
  return not d.s or d.in_sets[i] == true
end

local function set_names(c, idx)
  local out = {}
  for _, i in ipairs(idx) do out[#out + 1] = c.sets[i] end
  return out
end

local function is_array(v)
  if type(v) ~= "table" or getmetatable(v) then return false end
  local n = 0
  for k in pairs(v) do
    if math.type(k) ~= "integer" then return false end
    n = n + 1
  end
  return n == #v
end
M.is_array = is_array

local MULTI = { MultiValuedProperty = true, ProxyAddressCollection = true }
-- [Flags] enums: several values, as a list or "A, B" (MailboxMoveCapability is additive,
-- wire.md §2.11).
local FLAGS = { MailboxMoveCapability = true, RequestFlags = true,
                MigrationWorkflowControlFlags = true }
local function multi_valued(t) return MULTI[t] or FLAGS[t] or t:sub(-2) == "[]" end

-- An enum value: exact (case-insensitive) match, or, when prefix is set (the service's
-- behaviour, wire.md §2.4), a unique prefix. Returns the canonical value or nil.
local function enum_value(d, v, prefix)
  local s = tostring(v):lower()
  local hit = d.vl[s]
  if hit or not prefix then return hit end
  for lv, canon in pairs(d.vl) do
    if lv:sub(1, #s) == s then
      if hit then return nil end
      hit = canon
    end
  end
  return hit
end

local function bind_error(code, cmdlet, param, sets, fmt, ...)
  return new_err { code = code, exception = M.NS_PS .. code, cmdlet = cmdlet, parameter = param,
                   sets = sets, message = string.format(fmt, ...), ["local"] = true }
end

-- Check one value against its parameter's type and valid values; returns the value to send
-- (enum values in their canonical case) or nil, why.
local function check_value(_name, d, v, prefix)
  local t = d.t
  if t == "SwitchParameter" or t == "Boolean" then
    if type(v) ~= "boolean" then return nil, "expects true or false" end
    return v
  end
  if t == "Int32" or t == "UInt16" then
    local n = math.tointeger(tonumber(v))
    if not n or (t == "UInt16" and (n < 0 or n > 65535)) then return nil, "expects an integer" end
    if d.vl and not d.vl[tostring(n)] then
      return nil, "expects one of: " .. table.concat(d.v, ", ")
    end
    return n
  end
  if t == "Unlimited" then
    if type(v) == "string" and v:lower() == "unlimited" then return "Unlimited" end
    local n = math.tointeger(tonumber(v))
    if not n or n < 1 then return nil, "expects a positive integer or \"Unlimited\"" end
    return n
  end
  if t == "Guid" then
    if type(v) ~= "string" or not v:match(GUID_PAT) then return nil, "expects a GUID" end
    return v
  end
  if d.vl and not (d.v[1] and d.v[1]:find("=", 1, true)) then  -- key=Type lists are templates
    local function one(x)
      if type(x) ~= "string" and type(x) ~= "number" then return nil end
      return enum_value(d, x, prefix)
    end
    if FLAGS[t] and type(v) == "string" and v:find(",", 1, true) then
      local parts = {}
      for x in v:gmatch("[^,%s]+") do parts[#parts + 1] = x end
      v = parts
    end
    if is_array(v) then
      if not multi_valued(t) and #v ~= 1 then return nil, "takes a single value" end
      local out = {}
      for i, x in ipairs(v) do
        out[i] = one(x)
        if not out[i] then return nil, "has invalid value '" .. tostring(x) .. "'" end
      end
      return out
    end
    local c = one(v)
    if not c then return nil, "has invalid value '" .. tostring(v) .. "'" end
    return c
  end
  return v
end

-- Bind params to cmdlet. opts.prefix_enums: accept unique enum prefixes (the service does).
-- Returns {cmdlet, set, params = {Canonical = value}} or nil, err (err.code is the PowerShell
-- exception short name the service would answer with; err.sets the candidate sets).
function M.bind(cmdlet, params, opts)
  opts = opts or {}
  local name, c = M.cmdlet(cmdlet)
  if not name then
    return nil, bind_error("CommandNotFoundException", cmdlet, nil, nil,
      "%s: not a cmdlet t2t knows (exo-cmdlets.json); pass opts.unchecked to send it anyway",
      tostring(cmdlet))
  end
  local all = {}
  for i = 1, #c.sets do all[i] = i end
  local out, given = {}, {}
  for k, v in pairs(params or {}) do
    local p = type(k) == "string" and c.by_lower[k:lower()]
    if not p then
      return nil, bind_error("AmbiguousParameterSetException", name, tostring(k),
        set_names(c, all), "%s: a parameter cannot be found that matches parameter name '%s' " ..
        "(parameter sets: %s)", name, tostring(k), table.concat(c.sets, ", "))
    end
    if out[p] ~= nil then
      return nil, bind_error("ParameterBindingException", name, p, nil,
        "%s: parameter '%s' given more than once", name, p)
    end
    local value, why = check_value(p, c.params[p], v, opts.prefix_enums)
    if value == nil then
      local d = c.params[p]
      return nil, bind_error("ParameterBindingException", name, p, nil,
        "%s: cannot bind parameter '%s' (%s): %s%s", name, p, d.t, why,
        d.v and why:find("invalid value") and (". Valid values: " .. table.concat(d.v, ", ")) or "")
    end
    out[p] = value
    given[#given + 1] = p
  end
  table.sort(given)
  -- Sets that contain every given parameter.
  local cands = {}
  for i = 1, #c.sets do
    local ok = true
    for _, p in ipairs(given) do
      if not in_set(c.params[p], i) then ok = false; break end
    end
    if ok then cands[#cands + 1] = i end
  end
  if #cands == 0 then
    return nil, bind_error("AmbiguousParameterSetException", name, given[1], set_names(c, all),
      "%s: parameter set cannot be resolved using the specified named parameters (-%s); " ..
      "no parameter set takes them all (sets: %s)", name, table.concat(given, " -"),
      table.concat(c.sets, ", "))
  end
  -- Among those, the sets whose required parameters are all given.
  local best, best_req, missing = nil, -1, {}
  for _, i in ipairs(cands) do
    local miss, nreq = {}, #c.required[i]
    for _, p in ipairs(c.required[i]) do
      if out[p] == nil then miss[#miss + 1] = p end
    end
    table.sort(miss)
    if #miss == 0 then
      local pref = (c.sets[i] == "Identity" or c.sets[i] == "Default") and 0.5 or 0
      if nreq + pref > best_req then best, best_req = i, nreq + pref end
    else
      missing[#missing + 1] = { set = c.sets[i], params = miss }
    end
  end
  if not best then
    local parts = {}
    for _, m in ipairs(missing) do
      parts[#parts + 1] = m.set .. " needs -" .. table.concat(m.params, " -")
    end
    return nil, bind_error("ParameterBindingException", name, missing[1].params[1],
      set_names(c, cands), "%s: missing mandatory parameters: %s (%s)", name,
      table.concat(missing[1].params, " "), table.concat(parts, "; "))
  end
  return { cmdlet = name, set = c.sets[best], params = out }
end

---------------------------------------------------------------------------------------------
-- Encoding (wire.md §2.4) and JSON with empty arrays (lua-cjson 2.1.0 has no empty_array).

local EMPTY = "\1t2t-empty-array\1"
M.EMPTY_ARRAY_SENTINEL = EMPTY

-- cjson.encode, with every EMPTY sentinel string written as [].
function M.json_encode(v)
  local s = cjson.encode(v)
  if s:find("\\u0001t2t-empty-array\\u0001", 1, true) then
    s = s:gsub('"\\u0001t2t%-empty%-array\\u0001"', "[]")
  end
  return s
end

-- base64 (RFC 4648) for byte[] parameters such as New-MigrationBatch -CSVData.
function M.base64_encode(s) return require("t2t.crypto").base64_encode(s) end
function M.base64_decode(s) return require("t2t.crypto").base64_decode(s) end

local function is_empty_table(v) return type(v) == "table" and next(v) == nil end

-- A DateTime as the module sends it: UTC yyyy-MM-ddTHH:mm:ss.fffffffZ.
function M.datetime(epoch)
  local whole = math.floor(epoch)
  local frac = math.floor((epoch - whole) * 1e7 + 0.5)
  return os.date("!%Y-%m-%dT%H:%M:%S", whole) .. string.format(".%07dZ", frac)
end

local function hashtable(t)
  local h = { ["@odata.type"] = "#Exchange.GenericHashTable" }
  for k, v in pairs(t) do h[k] = is_empty_table(v) and EMPTY or v end
  return h
end

-- The JSON value for one bound parameter; may add a sibling "<Name>@odata.type" key to out.
local function encode_param(out, name, d, v)
  local t = d.t
  if t == "DateTime" and type(v) == "number" then v = M.datetime(v)
  elseif t == "Byte[]" and type(v) == "string" then
    v = { ["@odata.type"] = "#Exchange.ByteArrayType",
          Data = M.base64_encode(v) }
  elseif (t == "SecureString") and type(v) == "string" then
    require("t2t.log").secret(v)
  elseif t == "PSCredential" and type(v) == "table" then
    require("t2t.log").secret(v.Password)
  elseif type(v) == "table" and not is_array(v) and t ~= "PSCredential" then
    v = hashtable(v)
  elseif is_array(v) then
    if #v == 0 then v = EMPTY
    elseif type(v[1]) == "table" and not is_array(v[1]) then
      local arr = {}
      for i, h in ipairs(v) do arr[i] = hashtable(h) end
      v = arr
      out[name .. "@odata.type"] = "#Collection(Exchange.GenericHashTable)"
    end
  end
  out[name] = v
end

-- The InvokeCommand request body for a bound cmdlet.
function M.encode_body(b)
  local p = {}
  local c = data()[b.cmdlet]
  for name, v in pairs(b.params) do
    encode_param(p, name, c and c.params[name] or { t = "?" }, v)
  end
  return M.json_encode({ CmdletInput = { CmdletName = b.cmdlet, Parameters = p } })
end

---------------------------------------------------------------------------------------------
-- Responses and errors (wire.md §2.5, §2.7).

-- A key of a JSON object, case-insensitively.
local function ci(t, key)
  if type(t) ~= "table" then return nil end
  if t[key] ~= nil then return t[key] end
  key = key:lower()
  for k, v in pairs(t) do
    if type(k) == "string" and k:lower() == key then return v end
  end
end

-- "ExId|Namespace.ExceptionType|text" -> id, type, text (nil when not in that form).
local function split_detail(s)
  if type(s) ~= "string" then return nil end
  local id, typ, text = s:match("^([^|]*)|([%w%.%+_`]+)|(.*)$")
  if id then return id, typ, text end
end
M.split_detail = split_detail

local function lower_headers(h)
  local out = {}
  for k, v in pairs(h or {}) do out[k:lower()] = v end
  return out
end

local function is_nul_body(body)
  return body == "" or not body:find("[^%z]")
end

local RETRY_STATUS = { [401] = true, [429] = true, [503] = true, [504] = true }

-- An err table from a non-2xx response.
function M.parse_error(resp, cmdlet)
  local h = lower_headers(resp.headers)
  local body = resp.body or ""
  local e = new_err { status = resp.status, cmdlet = cmdlet,
                      request_id = h["request-id"] or h["x-request-id"] or h["client-request-id"] }
  e.retry_after = tonumber(h["retry-after"])
  local ok, doc = false, nil
  if body:find("^%s*[%[{]") then ok, doc = pcall(cjson.decode, body) end
  if resp.status == 403 and not ok then
    e.code = "Forbidden"
    e.message = (cmdlet or "InvokeCommand") .. ": 403 with no JSON body" ..
      (is_nul_body(body) and " (the NUL-byte answer)" or "") ..
      ": the app lacks an Exchange directory role (Exchange Administrator, or a read-only role " ..
      "for Get-*), or the cmdlet is not permitted for it or does not exist"
    return e
  end
  if resp.status == 429 and body:find(M.CONCURRENCY_TEXT, 1, true) then
    e.code, e.message, e.retryable = "TooManyConcurrentRequests", body, true
    return e
  end
  local err = ok and ci(doc, "error")
  if type(err) ~= "table" then
    e.code = resp.status == 401 and "Unauthorized" or ("HTTP" .. tostring(resp.status))
    e.message = string.format("%s: HTTP %s%s", cmdlet or "InvokeCommand", tostring(resp.status),
      resp.status == 401 and " (token invalid or expired, or the app has no Exchange.ManageAsApp role)"
      or (#body > 0 and not is_nul_body(body) and (": " .. body:sub(1, 200)) or ""))
    e.retryable = RETRY_STATUS[resp.status] or false
    return e
  end
  local inner = ci(err, "innererror")
  local internal = ci(inner, "internalexception")
  local details = ci(err, "details")
  local detail = type(details) == "table" and details[1] and ci(details[1], "message")
  local id, typ, text = split_detail(detail)
  local imsg = ci(internal, "message")
  local iid, ityp, itext = split_detail(imsg)
  e.error_id = id or iid
  e.exception = typ or ityp or h["x-exceptiontype"] or ci(internal, "type")
  -- Message resolution order (wire.md §2.7).
  e.message = itext or (type(imsg) == "string" and imsg) or text or detail or ci(err, "message")
  e.code = e.exception and e.exception:match("([%w_`]+)$") or ci(err, "code") or
    ("HTTP" .. tostring(resp.status))
  e.retryable = RETRY_STATUS[resp.status] or M.TRANSIENT[e.code] or false
  return e
end

-- Copy of obj without annotation keys (anything containing '@') and without null properties:
-- Exchange sends every property of the object type, null when unset; they read as absent.
local function strip(obj)
  if type(obj) ~= "table" then return obj end
  local out = {}
  for k, v in pairs(obj) do
    if (type(k) ~= "string" or not k:find("@", 1, true)) and v ~= cjson.null then out[k] = v end
  end
  return out
end
M.strip = strip

---------------------------------------------------------------------------------------------
-- The client.

local Client = {}
Client.__index = Client


-- exo.new{tenant, token, http, cloud, tenant_id, page_size, max_retries, retry_base, sleep,
-- now, timeout, base, secure_string_key}: a client for one tenant.
function M.new(o)
  assert(type(o) == "table", "exo.new: options table expected")
  assert(type(o.tenant) == "string", "exo.new: tenant (GUID or initial domain) expected")
  assert(type(o.token) == "function", "exo.new: token function expected")
  assert(o.http and o.http.request, "exo.new: http client expected")
  local base = o.base or M.HOSTS[o.cloud or "global"]
  assert(base, "exo.new: unknown cloud " .. tostring(o.cloud))
  local tid = o.tenant_id or (o.tenant:match(GUID_PAT) and o.tenant)
  local self = setmetatable({
    tenant = o.tenant, http = o.http, token = o.token, base = base,
    url = base .. "/adminapi/beta/" .. o.tenant .. "/InvokeCommand",
    anchor = tid and ("APP:" .. M.ANCHOR_MAILBOX .. "@" .. tid)
             or ("UPN:" .. M.ANCHOR_MAILBOX .. "@" .. o.tenant),
    page_size = o.page_size or 1000, max_retries = o.max_retries or 5,
    retry_base = o.retry_base or 2, max_retry_after = o.max_retry_after or 120,
    sleep = o.sleep or require("t2t").sleep, now = o.now or os.time, timeout = o.timeout or 960,
    connection_id = o.connection_id, poll = o.poll or 5, secure_string_key = o.secure_string_key,
  }, Client)
  self.cmd = setmetatable({}, { __index = function(t, name)
    local f = function(params, opts) return self:invoke(name, params, opts) end
    t[name] = f
    return f
  end })
  return self
end

-- Cmdlets that only read: sending one twice is harmless, so the transport may re-send it and
-- every failure that may pass is retried.  Any other cmdlet is retried only when it surely was
-- not run (throttled, 503, a transient exception EXO names, no connection); a 500/502/504 or a
-- lost answer is returned with err.unknown_outcome = true, for the caller to look first
-- (t2t.tenant does, as for Graph) -- retrying it blindly could run it twice.
local function reads_only(cmdlet)
  return type(cmdlet) == "string" and (cmdlet:match("^Get%-") or cmdlet:match("^Test%-")) ~= nil
end
M.reads_only = reads_only
local READ_RETRY = { [500] = true, [502] = true, [503] = true, [504] = true, [429] = true, [401] = true }
local SAFE_CODES = { connect = true }

-- One POST with the EXO retry list; returns the decoded page or nil, err.
function Client:post(url, body, page_size, cmdlet, crid)
  local reading = reads_only(cmdlet)
  local refreshed = false
  local attempt = 0
  while true do
    local tok, terr = self.token(refreshed)
    if not tok then
      return nil, new_err { code = "TokenError", cmdlet = cmdlet, cause = terr,
                            message = cmdlet .. ": no token: " .. tostring(terr) }
    end
    local headers = {
      ["Authorization"] = "Bearer " .. tok, ["Content-Type"] = "application/json",
      ["Accept"] = "application/json", ["X-AnchorMailbox"] = self.anchor,
      ["Prefer"] = "odata.maxpagesize=" .. page_size, ["client-request-id"] = crid,
      ["X-CmdletName"] = cmdlet, ["X-ResponseFormat"] = "json",
    }
    if self.connection_id then headers["connection-id"] = self.connection_id end
    local resp, herr = self.http:request { method = "POST", url = url, headers = headers,
                                           body = body, timeout = self.timeout, retry = false,
                                           idempotent = reading }
    local err
    if not resp and type(herr) == "table" and herr.code == "decode" then
      -- libcurl could not gunzip the body: the gateway's NUL-byte 403 "declared as gzip"
      -- (wire.md §2.7) is the one known cause.
      err = M.parse_error({ status = 403, headers = {}, body = "" }, cmdlet)
      err.cause, err.request_id = herr, crid
    elseif not resp then
      err = new_err { code = type(herr) == "table" and herr.code or "TransportError",
                      cmdlet = cmdlet, cause = herr, request_id = crid,
                      retryable = not (type(herr) == "table" and herr.retryable == false),
                      message = cmdlet .. ": " .. tostring(type(herr) == "table" and
                                                           (herr.message or herr.code) or herr) }
    elseif resp.status >= 200 and resp.status < 300 then
      local ok, doc = pcall(cjson.decode, resp.body or "")
      if ok and type(doc) == "table" then return doc end
      err = new_err { code = "BadResponse", status = resp.status, cmdlet = cmdlet,
                      message = cmdlet .. ": response is not JSON", retryable = false }
    else
      err = M.parse_error(resp, cmdlet)
      err.request_id = err.request_id or crid
    end
    if reading then
      err.retryable = err.retryable or READ_RETRY[err.status] or (err.status == nil and err.cause ~= nil
                      and type(err.cause) == "table" and err.cause.retryable) or false
    elseif err.retryable and (err.status == nil or err.status == 0) then
      -- no answer: it may have run; only a connection never made is surely not
      err.retryable = SAFE_CODES[err.code] or false
      err.unknown_outcome = not err.retryable
    elseif err.status == 500 or err.status == 502 or err.status == 504 then
      err.retryable, err.unknown_outcome = false, true
    end
    if err.status == 401 then
      if refreshed then err.retryable = false else refreshed = true end
    end
    if not err.retryable or attempt >= self.max_retries then
      err.attempts = attempt + 1
      return nil, err
    end
    local delay = self.retry_base * 2 ^ attempt
    if err.status == 429 and err.retry_after then
      delay = math.min(err.retry_after, self.max_retry_after)
    end
    if err.status ~= 401 then
      require("t2t.http").waiting(delay, "retrying " .. cmdlet .. " (Exchange Online)",
                                  tostring(err.code or err.status))
      self.sleep(delay)
    end
    attempt = attempt + 1
  end
end

local function select_query(sel)
  if not sel then return "" end
  if type(sel) == "table" then sel = table.concat(sel, ",") end
  return "?$select=" .. sel
end

-- All pages of one bound cmdlet; returns list, warnings or nil, err.
function Client:run(b, body, opts)
  local crid = opts.client_request_id or require("t2t.crypto").uuid4()
  local rs = b.params.ResultSize
  local remaining = math.type(rs) == "integer" and rs or nil
  local url = self.url .. select_query(opts.select)
  local list, warnings = {}, {}
  while url do
    local size = remaining and math.min(remaining, self.page_size) or self.page_size
    local doc, err = self:post(url, body, size, b.cmdlet, crid)
    if not doc then return nil, err end
    for _, w in ipairs(ci(doc, "@adminapi.warnings") or {}) do warnings[#warnings + 1] = w end
    for _, obj in ipairs(doc.value or {}) do
      obj = opts.raw and obj or strip(obj)
      if opts.each then opts.each(obj) else list[#list + 1] = obj end
      if remaining then
        remaining = remaining - 1
        if remaining == 0 then return list, warnings end
      end
    end
    url = doc["@odata.nextLink"]
    local safe, why = true, nil
    if url ~= nil then safe, why = require("t2t.http").token_target(url, self.base) end
    if not safe then
      return nil, new_err { code = "UnsafeUrl", cmdlet = b.cmdlet, retryable = false,
        message = string.format("%s: refused to follow @odata.nextLink to %s (%s): the token goes only " ..
          "over HTTPS to %s", b.cmdlet, require("t2t.http").redact_url(url), why, self.base) }
    end
  end
  return list, warnings
end

-- Run a cmdlet: list of objects (annotation keys stripped) and warnings, or nil, err.
-- opts: select (properties), wait_visible (seconds to retry ManagementObjectNotFound: replication
-- lag after a create), unchecked (skip local binding), raw (keep annotations), client_request_id,
-- each (function(obj) called per object as pages arrive; the list returned is then empty, so a
-- listing of 100k mailboxes need not be held in memory at once).
-- The key SecureString values are encrypted with: opts.secure_string_key given to exo.new, a
-- Key, a PEM or RSAKeyValue XML text, a file path, or a function returning one of those.
function Client:securestring_key()
  local k = self.secure_string_key
  if type(k) == "function" then
    local err
    k, err = k()
    if k == nil then return nil, err end
  end
  if k == nil then return nil end
  if type(k) == "string" then
    local key, err = require("t2t.crypto").public_key_from(k)
    if not key then return nil, err end
    k = key
  end
  self.secure_string_key = k
  return k
end

-- SecureString values travel RSA-encrypted (PKCS#1 v1.5, then base64) with the Exchange Online
-- module's public key (wire.md §2.4), never in clear: b with them sealed, or nil, err.
function Client:seal(b)
  local c = data()[b.cmdlet]
  local sealed
  for name, v in pairs(b.params) do
    local d = c and c.params[name]
    if d and d.t == "SecureString" and type(v) == "string" then
      require("t2t.log").secret(v)
      local key, kerr = self:securestring_key()
      if not key then
        return nil, new_err { code = "SecureStringKey", cmdlet = b.cmdlet, retryable = false,
          message = string.format("%s -%s: Exchange Online takes a SecureString only encrypted with the "
            .. "ExchangeOnlineManagement module's public key; set exo_securestring_key in the profile (PEM, "
            .. "RSAKeyValue XML, or a file holding it)%s", b.cmdlet, name, kerr and ": " .. kerr or "") }
      end
      if not sealed then
        sealed = {}
        for k2, v2 in pairs(b.params) do sealed[k2] = v2 end
      end
      sealed[name] = M.base64_encode(key:encrypt(v, "pkcs1"))
    end
  end
  if not sealed then return b end
  local out = {}
  for k2, v2 in pairs(b) do out[k2] = v2 end
  out.params = sealed
  return out
end

function Client:invoke(cmdlet, params, opts)
  opts = opts or {}
  local b, err
  if opts.unchecked then
    b = { cmdlet = cmdlet, params = params or {} }
  else
    b, err = M.bind(cmdlet, params, {})
    if not b then return nil, err end
  end
  b, err = self:seal(b)
  if not b then return nil, err end
  local body = M.encode_body(b)
  local deadline = opts.wait_visible and self.now() + (opts.wait_visible == true and 300
                                                         or opts.wait_visible)
  while true do
    local list, warnings = self:run(b, body, opts)
    if list or not deadline or warnings.code ~= "ManagementObjectNotFoundException"
       or self.now() >= deadline then
      return list, warnings
    end
    self.sleep(math.min(self.poll, math.max(0, deadline - self.now())))
  end
end

return M
