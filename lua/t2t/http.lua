-- t2t.http: HTTP policy over the C primitive t2t.core.http.
--
--   http.request{method, url, headers, body, timeout, ...}     one attempt, no policy
--   local c = http.client{service = "graph", ca_file = ..., connect_to = {...}, retry = {...},
--                         concurrency = {...}, on_401 = fn, trace = true | fn, timeout = s}
--   c:request{method, url, headers, body, timeout, retry = false | {...}}
--
-- The client retries per a service policy (retryable statuses and error codes, Retry-After in
-- seconds or as an HTTP-date, exponential backoff with full jitter, caps on attempts and total
-- time), calls on_401 once for a token refresh, gives every request a client-request-id kept
-- across its retries, and limits concurrency per host adaptively: halve on 429/503, grow slowly
-- on success, so bulk work settles just under what the service accepts.  See docs/http.md.
local core = require "t2t.core.http"
local t2t = require "t2t"
local log = require "t2t.log"

local M = {}

-- SSLKEYLOGFILE makes libcurl (and the simulator's GnuTLS) append every TLS session key to that
-- file, readable by whoever can read it: the run's tokens and secrets could be decrypted from
-- a capture.  Said once, loudly, whatever the log level: it is never right by accident.
local keylog = os.getenv("SSLKEYLOGFILE")
if keylog and keylog ~= "" then
  io.stderr:write("t2t: WARNING: SSLKEYLOGFILE is set: every TLS session key of this run is written to ",
                  keylog, "; anyone who can read that file can decrypt the traffic, tokens and ",
                  "secrets included. Unset it unless you are debugging TLS.\n")
end

-- One attempt: the response {status, headers, header_list, body, url, elapsed, http_version}
-- or nil, err {code, message, url, retryable}.  Works inside and outside tasks.
-- resend = false: libcurl may not re-send the request by itself (see docs/http.md).
function M.request(opts)
  local req <close> = core.start(opts)
  t2t.await_io(req)
  return req:result()
end

---------------------------------------------------------------------------------------------
-- client-request-id: a UUID v4 from OpenSSL's generator (libcurl has loaded libcrypto already).

function M.uuid4() return require("t2t.core.crypto").uuid4() end

---------------------------------------------------------------------------------------------
-- Retry-After: delta-seconds (fractional accepted) or an HTTP-date.

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
                 Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- An HTTP-date (IMF-fixdate, RFC 850 or asctime) as epoch seconds, or nil.
function M.parse_http_date(v)
  if type(v) ~= "string" then return nil end
  local d, mo, y, h, mi, s = v:match("^%a+, (%d%d?) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d then
    d, mo, y, h, mi, s = v:match("^%a+, (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
    if y then y = tonumber(y); y = y < 70 and 2000 + y or 1900 + y end
  end
  if not d then
    mo, d, h, mi, s, y = v:match("^%a+ (%a%a%a) +(%d%d?) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  end
  mo = mo and MONTHS[mo]
  if not mo then return nil end
  return require("t2t.time").epoch(tonumber(y), mo, tonumber(d), tonumber(h), tonumber(mi), tonumber(s))
end

-- Retry-After as seconds to wait (>= 0), or nil.  An HTTP-date is measured against the
-- response's Date header when there is one (immune to our clock's skew), else our clock.
function M.parse_retry_after(v, date, now)
  if type(v) ~= "string" then return nil end
  v = v:match("^%s*(.-)%s*$")
  if v:match("^%d+%.?%d*$") or v:match("^%d*%.%d+$") then return tonumber(v) end
  local at = M.parse_http_date(v)
  if not at then return nil end
  local ref = M.parse_http_date(date) or now or os.time()
  return math.max(0, at - ref)
end

---------------------------------------------------------------------------------------------
-- Policies per service.  Lists here; sets once a client is made.
--   statuses: retried for every method;  codes: transport errors retried (idempotent methods)
--   unsafe_statuses / unsafe_codes: what is retried for POST/PATCH (the request surely was not
--   processed), unless retry.unsafe = true says the caller's POSTs are safe to repeat.

local BASE = {
  max_attempts = 5, max_time = 120, base_delay = 0.5, max_delay = 30, max_retry_after = 300,
  statuses = { 408, 429, 500, 502, 503, 504 }, codes = { "timeout", "connect", "reset" },
  unsafe_statuses = { 429, 503 }, unsafe_codes = { "connect" }, unsafe = false,
}

M.policies = {
  default = {},
  graph = { max_attempts = 6, max_time = 300 },
  -- no "exo": t2t.exo sends retry = false and retries itself, because EXO names its retryable
  -- errors in the response body (TooManyConcurrentRequests, transient codes), not the status
  arm = { max_attempts = 6, max_time = 300 },
  keyvault = { max_attempts = 5 },
  login = { max_attempts = 4, max_time = 60, unsafe = true },   -- token requests repeat safely
}

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }

-- idempotent(method, policy, request) -> whether sending the request twice is harmless: by its
-- method, by the policy (retry.unsafe), or because the caller says so (request.idempotent =
-- true, e.g. an EXO Get- cmdlet, which travels as a POST).
function M.idempotent(method, p, o)
  if o and o.idempotent ~= nil then return o.idempotent and true or false end
  return IDEMPOTENT[method] or (p and p.unsafe) or false
end

local function set(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end

-- The effective policy: BASE < service < overrides.
local function make_policy(service, over)
  local p = {}
  for k, v in pairs(BASE) do p[k] = v end
  for k, v in pairs(M.policies[service] or {}) do p[k] = v end
  for k, v in pairs(over or {}) do p[k] = v end
  for _, k in ipairs { "statuses", "codes", "unsafe_statuses", "unsafe_codes" } do
    p[k] = set(p[k])
  end
  return p
end

---------------------------------------------------------------------------------------------
-- Adaptive concurrency per host: slow start (+1 per success) until the first throttle, then
-- halve on 429/503 (once per round: only for a request started after the last cut) and grow
-- by 1/limit per success — only while the limit is what holds requests back.

local Limiter = {}
Limiter.__index = Limiter

local function new_limiter(c)
  -- a limit under 1 means no slot at all (a deadlock), and 1/limit growth explodes near 0
  local min = math.max(1, c.min or 1)
  local max = math.max(min, c.max or 256)
  local initial = math.min(max, math.max(min, c.initial or 8))
  return setmetatable({
    limit = initial, min = min, max = max, slow_start = c.slow_start ~= false,
    sem = t2t.semaphore(math.floor(initial)), last_cut = -math.huge, throttled = 0, completed = 0,
  }, Limiter)
end

function Limiter:_apply()
  self.sem:set_limit(math.max(1, math.floor(self.limit)))
end

function Limiter:throttle(started)
  self.throttled = self.throttled + 1
  if started > self.last_cut then
    self.limit = math.max(self.min, self.limit / 2)
    self.slow_start = false
    self.last_cut = t2t.now()
    self:_apply()
  end
end

function Limiter:success()
  self.completed = self.completed + 1
  local sem = self.sem
  if sem.used >= sem.limit or sem:waiting() > 0 then
    self.limit = math.min(self.max, self.limit + (self.slow_start and 1 or 1 / self.limit))
    self:_apply()
  end
end

local function host_key(url)
  local scheme, auth = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then return url end
  scheme = scheme:lower()
  auth = auth:gsub("^.*@", ""):lower()
  if not auth:find(":%d+$") then auth = auth .. (scheme == "http" and ":80" or ":443") end
  return scheme .. "://" .. auth
end
M.host_key = host_key

-- token_target(url, base) -> true | nil, why: may a bearer token issued for the service at
-- base ("https://graph.microsoft.com", or {suffix = ".vault.azure.net"} for any vault) go to
-- url?  Only over HTTPS, only to that origin, and only with a plain host[:port] authority (no
-- user@, no odd characters a URL parser might read another way).  Paging links and
-- long-running-operation URLs come from responses: a hostile or broken server must not be
-- able to send our token elsewhere with them.
function M.token_target(url, base)
  local scheme, auth = tostring(url):match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then return nil, "not an absolute URL" end
  if scheme:lower() ~= "https" then return nil, "not HTTPS" end
  local host = auth:lower():match("^([%w%.%-]+):?%d*$") or auth:lower():match("^(%[[%x:%.]+%]):?%d*$")
  if not host or auth:find(":$") then return nil, "an unusual host part '" .. auth .. "'" end
  if type(base) == "table" then
    local suffix = base.suffix:lower()
    if #host > #suffix and host:sub(-#suffix) == suffix and auth:lower() == host then return true end
    return nil, "not a host under " .. suffix
  end
  if host_key(url) == host_key(base) then return true end
  return nil, "not " .. host_key(base)
end

---------------------------------------------------------------------------------------------
-- Trace: method, URL (secret-looking query values hidden), status or error, attempt, elapsed.

local SECRET_QUERY = { sig = true, code = true, access_token = true, client_secret = true,
                       token = true, password = true, refresh_token = true, assertion = true,
                       client_assertion = true, secret = true, id_token = true, device_code = true,
                       key = true, api_key = true, ["api-key"] = true, apikey = true, pwd = true,
                       passphrase = true, ["x-ms-signature"] = true }
M.SECRET_QUERY = SECRET_QUERY

function M.redact_url(url)
  url = url:gsub("^(%a[%w+.-]*://)[^/?#]*@", "%1***@")   -- user:password@ is a credential
  return (url:gsub("([?&])([^=&#]+)=([^&#]*)", function(sep, k, _v)
    if SECRET_QUERY[k:lower()] then return sep .. k .. "=***" end
  end))
end

-- waiting(delay, action, why): one line (t2t.log info) for a wait longer than 2 s -- what comes
-- next, why, and until when -- so a long pause before a retry never looks like a hang.
function M.waiting(delay, action, why)
  if not delay or delay <= 2 then return end
  log.info("waiting %.0fs (until %s) before %s: %s", delay, os.date("%H:%M:%S", os.time() + math.ceil(delay)),
           action, why)
end

local function trace(client, ev)
  local t = client.trace
  if not t then return end
  if type(t) == "function" then return t(ev) end
  log.info("http %s %s -> %s attempt %d %.3fs%s [%s]", ev.method, ev.url,
           ev.status or ev.code, ev.attempt, ev.elapsed or 0,
           ev.delay and string.format(" retry in %.2fs", ev.delay) or "", ev.request_id)
end

---------------------------------------------------------------------------------------------
-- The client.

local Client = {}
Client.__index = Client

-- http.client{service, ca_file, ca_pem, connect_to, proxy, no_proxy, retry, concurrency,
-- on_401, trace, timeout, connect_timeout, headers, limits}
function M.client(o)
  o = o or {}
  assert(type(o) == "table", "http.client: options table expected")
  local service = o.service or "default"
  return setmetatable({
    service = service, ca_file = o.ca_file, ca_pem = o.ca_pem, connect_to = o.connect_to,
    -- hosts mapped with connect_to (the simulator) are reached directly, never via a proxy
    proxy = o.proxy, no_proxy = o.no_proxy or (o.connect_to and next(o.connect_to) and "*" or nil),
    timeout = o.timeout or 100, connect_timeout = o.connect_timeout or 15,
    headers = o.headers or {}, policy = make_policy(service, o.retry), on_401 = o.on_401,
    trace = o.trace, concurrency = o.concurrency or {}, limits = o.limits or {},
    stats = { requests = 0, attempts = 0, retries = 0, throttled = 0 },
    random = o.random or math.random, sleep = o.sleep or t2t.sleep,
  }, Client)
end

function Client:limiter(url)
  local key = host_key(url)
  local l = self.limits[key]
  if not l then
    l = new_limiter(self.concurrency)
    self.limits[key] = l
  end
  return l
end

-- Seconds before the next attempt, or nil to stop.
local function retry_delay(self, p, attempt, res, err, safe, started)
  if attempt >= p.max_attempts then return nil end
  local retry_after
  if res then
    if not (safe and p.statuses[res.status] or p.unsafe_statuses[res.status]) then return nil end
    local h = res.headers
    retry_after = M.parse_retry_after(h["retry-after"], h["date"])
    if retry_after and retry_after > p.max_retry_after then return nil end
  else
    if not (safe and p.codes[err.code] or p.unsafe_codes[err.code]) then return nil end
  end
  local cap = math.min(p.max_delay, p.base_delay * 2 ^ (attempt - 1))
  local delay = self.random() * cap                          -- full jitter
  if retry_after then delay = retry_after + delay * 0.1 end  -- never earlier than asked
  if t2t.now() + delay > started + p.max_time then return nil end
  return delay
end

-- One attempt under the host's limiter (the slot is given back however the attempt ends,
-- a cancelled task included).  Returns res, err, throttled.
local function attempt_once(lim, req)
  lim.sem:acquire()
  local _ <close> = lim.sem
  local started = t2t.now()
  local res, err = M.request(req)
  local throttled = res and (res.status == 429 or res.status == 503)
  if throttled then
    lim:throttle(started)
  elseif res then
    lim:success()
  end
  return res, err, throttled
end

function Client:_request(o)
  local p = self.policy
  if o.retry == false then p = make_policy(self.service, { max_attempts = 1 })
  elseif type(o.retry) == "table" then p = make_policy(self.service, o.retry) end
  local method = (o.method or "GET"):upper()
  local headers = {}
  for k, v in pairs(self.headers) do headers[k] = v end
  for k, v in pairs(o.headers or {}) do headers[k] = v end
  local crid
  for k, v in pairs(headers) do
    if k:lower() == "client-request-id" then crid = v end
  end
  if not crid then
    crid = M.uuid4()
    headers["client-request-id"] = crid
  end
  local req = {
    method = method, url = o.url, headers = headers, body = o.body,
    timeout = o.timeout or self.timeout, connect_timeout = o.connect_timeout or self.connect_timeout,
    ca_file = self.ca_file, ca_pem = self.ca_pem, connect_to = self.connect_to,
    proxy = self.proxy, no_proxy = self.no_proxy, follow = o.follow, max_body = o.max_body,
    -- a request that may not repeat is sent once per attempt t2t decides on: libcurl's own
    -- re-send on a dead reused connection is refused (the answer is then a "reset")
    resend = M.idempotent(method, p, o),
  }
  assert(type(req.url) == "string", "http client: url expected")
  local lim = self:limiter(req.url)
  local stats = self.stats
  stats.requests = stats.requests + 1
  local started, attempt, refreshed = t2t.now(), 0, false
  local shown = self.trace and M.redact_url(req.url)
  while true do
    attempt = attempt + 1
    stats.attempts = stats.attempts + 1
    local res, err, throttled = attempt_once(lim, req)
    if throttled then stats.throttled = stats.throttled + 1 end
    local delay
    if res and res.status == 401 and self.on_401 and not refreshed then
      refreshed = true
      if self.on_401(req, res) then delay = 0 end
    else
      delay = retry_delay(self, p, attempt, res, err, req.resend, started)
    end
    if self.trace then
      trace(self, { method = method, url = shown, status = res and res.status,
                    code = err and err.code, attempt = attempt, request_id = crid,
                    elapsed = res and res.elapsed, delay = delay, service = self.service })
    end
    if not delay then
      local out = res or err
      out.attempts, out.request_id, out.total_elapsed = attempt, crid, t2t.now() - started
      if err then
        err.service = self.service
        if err.url then err.url = M.redact_url(err.url) end   -- errors are printed and logged
      end
      return res, err
    end
    stats.retries = stats.retries + 1
    if delay > 2 then
      M.waiting(delay, "retrying " .. method .. " " .. (shown or M.redact_url(req.url)),
        res and ("HTTP " .. res.status .. (res.status == 429 and " (throttled)" or "")) or tostring(err.code))
    end
    if delay > 0 then self.sleep(delay) end
  end
end

-- client:request{method, url, headers, body, timeout, connect_timeout, follow, max_body,
-- idempotent = bool, retry = false | {policy overrides}} -> response | nil, err (after the policy's retries;
-- an HTTP error status is a response, not an err).  response.attempts, .request_id.
function Client:request(o)
  assert(type(o) == "table", "client:request: options table expected")
  if t2t.in_task() then return self:_request(o) end
  return t2t.run(self._request, self, o)
end

return M
