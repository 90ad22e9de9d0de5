-- t2t.core.http / t2t.http / t2t tasks against the embedded HTTPS server on loopback.
-- Timing is asserted loosely (never tight bounds): only "not earlier than" and generous caps.
local lu = require "luaunit"
local cjson = require "cjson"
local t2t = require "t2t"
local http = require "t2t.http"
local sched = require "t2t.core.sched"
local env = require "tests.lua.handlers.http_env"

local srv, base, ca
local keyn = 0
local function key() keyn = keyn + 1; return "k" .. keyn end

-- A client that trusts the test CA, with fast backoff for tests.
local function client(o)
  o = o or {}
  o.ca_file = o.ca_file or ca
  o.retry = o.retry or { base_delay = 0.01, max_delay = 0.05 }
  return http.client(o)
end

local function get(path, o)
  o = o or {}
  o.url = base .. path
  o.ca_file = o.ca_file or ca
  return http.request(o)
end

local function hits(k)
  local r = assert(get("/hits?key=" .. k))
  return cjson.decode(r.body)
end

TestHttp = env.class(function(s, b, c) srv, base, ca = s, b, c end)

function TestHttp.test_response_shape()
  local r = assert(get("/cookies"))
  lu.assertEquals(r.status, 200)
  lu.assertEquals(r.headers["set-cookie"], { "a=1; Path=/", "b=2" })
  lu.assertEquals(r.headers["x-multi"], "one, two")
  lu.assertEquals(r.headers["x-mixed-case"], "v")
  lu.assertEquals(r.url, base .. "/cookies")
  lu.assertTrue(r.elapsed > 0 and r.elapsed < 30)
  lu.assertEquals(r.http_version, "1.1")
  local names = {}
  for _, nv in ipairs(r.header_list) do names[#names + 1] = nv[1] end
  lu.assertStrContains(table.concat(names, " "), "set-cookie set-cookie")
end

function TestHttp.test_post_body_and_headers_reach_the_server()
  local r = assert(get("/echo?x=1", { method = "PATCH", body = '{"a":1}',
    headers = { ["Content-Type"] = "application/json", ["X-Two"] = { "a", "b" } } }))
  local seen = cjson.decode(r.body)
  lu.assertEquals(seen.method, "PATCH")
  lu.assertEquals(seen.body, '{"a":1}')
  lu.assertEquals(seen.headers["content-type"], "application/json")
  lu.assertStrContains(seen.headers["accept-encoding"] or "", "gzip")
  local empty = cjson.decode(assert(get("/echo", { method = "POST" })).body)
  lu.assertEquals(empty.headers["content-length"], "0")
  lu.assertNil(empty.headers["content-type"])
end

function TestHttp.test_misuse_raises()
  lu.assertErrorMsgContains("'url' is required", http.request, {})
  lu.assertErrorMsgContains("CR/LF", http.request, { url = base, headers = { X = "a\r\nB: c" } })
  lu.assertErrorMsgContains("bad method", http.request, { url = base, method = "GE T" })
end

function TestHttp.test_bad_certificate_is_tls()
  local r, err = http.request { url = base .. "/ok" }   -- the system store only
  lu.assertNil(r)
  lu.assertEquals(err.code, "tls")
  lu.assertFalse(err.retryable)
  lu.assertStrContains(tostring(err), "tls: ")
  -- a certificate from another issuer, even with our CA trusted
  local other, obase = env.start { cert_pem = env.certs().other_cert, key_pem = env.certs().other_key }
  r, err = http.request { url = obase .. "/ok", ca_file = ca }
  other:stop()
  lu.assertNil(r)
  lu.assertEquals(err.code, "tls")
  -- the right CA but the wrong name (connect_to keeps the name, changes the address)
  r, err = http.request { url = "https://wrong.example/ok", ca_file = ca,
                          connect_to = { "wrong.example:443:127.0.0.1:" .. srv:port() } }
  lu.assertNil(r)
  lu.assertEquals(err.code, "tls")
end

function TestHttp.test_ca_pem_and_connect_to_keep_the_real_name()
  local r = assert(http.request { url = "https://graph.microsoft.com/echo", ca_pem = env.certs().ca_pem,
                                  connect_to = { "graph.microsoft.com:443:127.0.0.1:" .. srv:port() } })
  lu.assertEquals(r.status, 200)
  lu.assertEquals(cjson.decode(r.body).headers.host, "graph.microsoft.com")
end

function TestHttp.test_timeout()
  local r, err = get("/delay?s=3", { timeout = 0.2 })   -- without the timeout: a 200 after 3 s
  lu.assertNil(r)
  lu.assertEquals(err.code, "timeout")
  lu.assertTrue(err.retryable)
end

function TestHttp.test_connection_refused_is_connect()
  local r, err = http.request { url = "https://127.0.0.1:1/ok", ca_file = ca }
  lu.assertNil(r)
  lu.assertEquals(err.code, "connect")
end

function TestHttp.test_reset_codes()
  local r, err = get("/reset?n=1000&key=" .. key())
  lu.assertNil(r)
  lu.assertEquals(err.code, "reset")
  lu.assertTrue(err.retryable)
end

function TestHttp.test_concurrency_n_l_over_c()
  local n, l, c = 40, 0.1, 10
  local t0 = t2t.now()
  local items = {}
  for i = 1, n do items[i] = i end
  local in_flight, most = 0, 0
  local res = t2t.parallel(items, function()
    in_flight = in_flight + 1
    most = math.max(most, in_flight)
    local r <close> = setmetatable({}, { __close = function() in_flight = in_flight - 1 end })
    return assert(get("/delay?s=" .. l)).status
  end, { concurrency = c })
  local wall = t2t.now() - t0
  for i = 1, n do lu.assertEquals(res[i].value, 200) end
  lu.assertEquals(most, c, "requests in flight at once")   -- concurrent, and never more than c
  lu.assertTrue(wall >= n * l / c * 0.9, "faster than possible: " .. wall)   -- a lower bound
end

function TestHttp.test_parallel_failing_item_leaves_others()
  local seen = {}
  local res = t2t.parallel({ "a", "b", "c", "d", "e" }, function(item, i)
    if item == "b" then error("bad item") end
    if item == "d" then error({ code = "custom" }) end
    local r = assert(get("/delay?s=0.05"))
    seen[#seen + 1] = i
    return item .. r.status
  end, { concurrency = 2, on_progress = function(done, total) lu.assertTrue(done <= total) end })
  lu.assertEquals(#res, 5)
  lu.assertEquals(res[1], { ok = true, value = "a200" })
  lu.assertFalse(res[2].ok)
  lu.assertStrContains(res[2].err, "bad item")
  lu.assertEquals(res[3].value, "c200")
  lu.assertEquals(res[4].err, { code = "custom" })
  lu.assertEquals(res[5].value, "e200")
  lu.assertEquals(#seen, 3)
end

function TestHttp.test_retry_after_is_honoured()
  local k = key()
  local c = client()
  local r = assert(c:request { url = base .. "/flaky?status=429&n=1&after=0.4&key=" .. k })
  lu.assertEquals(r.status, 200)
  lu.assertEquals(r.attempts, 2)
  local h = hits(k)
  lu.assertEquals(h.n, 2)
  lu.assertTrue(h.at[2] - h.at[1] >= 0.4, "retried after " .. (h.at[2] - h.at[1]))
end

function TestHttp.test_429_and_503_back_off_and_succeed()
  for _, status in ipairs { 429, 503 } do
    local k = key()
    local r = assert(client():request { url = base .. "/flaky?n=2&status=" .. status .. "&key=" .. k })
    lu.assertEquals(r.status, 200)
    lu.assertEquals(r.body, "ok after 3")
    lu.assertEquals(r.attempts, 3)
  end
  -- attempts are capped: the last response comes back
  local r = assert(client { retry = { max_attempts = 2, base_delay = 0.01 } }:request {
    url = base .. "/flaky?n=5&status=503&key=" .. key() })
  lu.assertEquals(r.status, 503)
  lu.assertEquals(r.attempts, 2)
  -- a status not in the policy is not retried
  r = assert(client():request { url = base .. "/flaky?n=5&status=404&key=" .. key() })
  lu.assertEquals(r.attempts, 1)
end

function TestHttp.test_post_is_not_retried_after_a_reset_unless_unsafe()
  local r, err = client():request { method = "POST", body = "x",
                                    url = base .. "/reset?n=1&key=" .. key() }
  lu.assertNil(r)
  lu.assertEquals(err.code, "reset")
  lu.assertEquals(err.attempts, 1)
  r = assert(client { retry = { unsafe = true, base_delay = 0.01 } }:request {
    method = "POST", body = "x", url = base .. "/reset?n=1&key=" .. key() })
  lu.assertEquals(r.status, 200)
  -- but a 429 on a POST is (the service did not process it)
  r = assert(client():request { method = "POST", body = "x",
                                url = base .. "/flaky?status=429&n=1&key=" .. key() })
  lu.assertEquals(r.attempts, 2)
end

function TestHttp.test_reset_mid_body_is_retried()
  local k = key()
  local r = assert(client():request { url = base .. "/reset?n=1&key=" .. k })
  lu.assertEquals(r.status, 200)
  lu.assertEquals(r.body, "ok after 2")
  lu.assertEquals(r.attempts, 2)
end

function TestHttp.test_total_time_cap()
  local r = assert(client { retry = { max_attempts = 100, max_time = 0.5, base_delay = 0.05 } }:request {
    url = base .. "/flaky?n=1000&status=503&key=" .. key() })
  lu.assertEquals(r.status, 503)
  lu.assertTrue(r.attempts < 100, "max_time ended the retries, not max_attempts: " .. r.attempts)
end

function TestHttp.test_client_request_id_is_stable_across_retries()
  local k = key()
  local r = assert(client():request { url = base .. "/flaky?n=2&status=503&key=" .. k })
  local h = hits(k)
  lu.assertEquals(h.n, 3)
  lu.assertStrMatches(h.ids[1], "%x+%-%x+%-4%x+%-[89ab]%x+%-%x+")
  lu.assertEquals(h.ids[2], h.ids[1])
  lu.assertEquals(h.ids[3], h.ids[1])
  lu.assertEquals(r.request_id, h.ids[1])
  local other = assert(client():request { url = base .. "/flaky?n=0&key=" .. k })
  lu.assertNotEquals(other.request_id, r.request_id)
  -- the caller's own id is kept
  local mine = assert(client():request { url = base .. "/ok",
                                         headers = { ["client-request-id"] = "given" } })
  lu.assertEquals(mine.request_id, "given")
end

function TestHttp.test_on_401_refreshes_once()
  local calls = 0
  local c = client { on_401 = function(req)
    calls = calls + 1
    t2t.sleep(0.01)                      -- hooks may wait (a token request)
    req.headers.Authorization = "Bearer good"
    return true
  end }
  local r = assert(c:request { url = base .. "/auth", headers = { Authorization = "Bearer old" } })
  lu.assertEquals(r.status, 200)
  lu.assertEquals(calls, 1)
  local bad = client { on_401 = function() calls = calls + 1; return true end }
  r = assert(bad:request { url = base .. "/auth" })
  lu.assertEquals(r.status, 401)
  lu.assertEquals(r.attempts, 2)         -- retried once, not forever
end

function TestHttp.test_trace_has_no_secrets()
  local log = require "t2t.log"
  local lines = {}
  log.set_sink({ write = function(_, ...) lines[#lines + 1] = table.concat({ ... }) end })
  local events = {}
  local c = client { trace = true }
  local ok, e = pcall(function()
    assert(c:request { url = base .. "/flaky?n=1&status=503&code=SECRETCODE&key=" .. key(), method = "GET",
                       headers = { Authorization = "Bearer SECRETTOKEN" }, body = nil })
    local c2 = client { trace = function(ev) events[#events + 1] = ev end }
    assert(c2:request { url = base .. "/echo", method = "PUT", body = "SECRETBODY",
                        headers = { Authorization = "Bearer SECRETTOKEN" } })
  end)
  log.set_sink(io.stderr)
  assert(ok, e)
  local text = table.concat(lines)
  lu.assertStrContains(text, "attempt 1")
  lu.assertStrContains(text, "-> 503")
  lu.assertStrContains(text, "-> 200")
  lu.assertNotStrContains(text, "SECRET")
  lu.assertEquals(#events, 1)
  lu.assertEquals(events[1].method, "PUT")
  lu.assertEquals(events[1].status, 200)
  lu.assertEquals(events[1].attempt, 1)
  for _, v in pairs(events[1]) do lu.assertNotStrContains(tostring(v), "SECRET") end
end

function TestHttp.test_adaptive_concurrency_settles_under_the_limit()
  local c = client { retry = { base_delay = 0.01, max_attempts = 10 }, concurrency = { initial = 16 } }
  local items = {}
  for i = 1, 120 do items[i] = i end
  local res = t2t.parallel(items, function()
    return assert(c:request { url = base .. "/limit?max=4&s=0.02&after=0.01" }).status
  end, { concurrency = 30 })
  for i = 1, #items do lu.assertEquals(res[i].value, 200) end
  local lim = c:limiter(base)
  lu.assertTrue(lim.limit <= 8, "limit " .. lim.limit)
  lu.assertTrue(c.stats.throttled < 60, "throttled " .. c.stats.throttled)
end

function TestHttp.test_gzip_and_max_body()
  local r = assert(get("/big?n=200000"))
  lu.assertEquals(#r.body, 200000)
  local nr, err = get("/big?n=200000", { max_body = 1000 })
  lu.assertNil(nr)
  lu.assertEquals(err.code, "too_large")
end

function TestHttp.test_retry_after_parsing()
  lu.assertEquals(http.parse_retry_after("3"), 3)
  lu.assertEquals(http.parse_retry_after(" 0.25 "), 0.25)
  lu.assertNil(http.parse_retry_after("soon"))
  lu.assertEquals(http.parse_retry_after("Sun, 06 Nov 1994 08:49:40 GMT",
                                         "Sun, 06 Nov 1994 08:49:37 GMT"), 3)
  lu.assertEquals(http.parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", nil, 784111770), 7)
  lu.assertEquals(http.parse_retry_after("Sun Nov  6 08:49:37 1994", nil, 784111777), 0)
  lu.assertEquals(http.parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), 0)
  lu.assertEquals(http.parse_retry_after("Sun, 06 Nov 1994 08:49:30 GMT", nil, 784111777), 0)
  lu.assertEquals(http.host_key("HTTPS://Graph.Microsoft.com/v1.0"), "https://graph.microsoft.com:443")
  lu.assertEquals(http.redact_url("https://h/p?a=1&sig=abc&code=x"), "https://h/p?a=1&sig=***&code=***")
end

-- A client's error keeps its URL for the message, with secret-looking query values hidden.
function TestHttp.test_client_error_url_redacted()
  local c = client { retry = { max_attempts = 1 } }
  local r, err = c:request { url = "https://user:pw@127.0.0.1:1/token?code=S3CRET&a=1" }
  lu.assertNil(r)
  lu.assertEquals(err.code, "connect")
  lu.assertEquals(err.url, "https://***@127.0.0.1:1/token?code=***&a=1")
  lu.assertNotStrContains(tostring(err), "S3CRET")
  lu.assertNotStrContains(tostring(err), "pw@")
end

function TestHttp.test_proxy_options()
  local dead = "http://127.0.0.1:1"        -- nothing listens there
  local r, err = get("/ok", { proxy = dead })
  lu.assertNil(r)
  lu.assertEquals(err.code, "connect")
  lu.assertEquals(assert(get("/ok", { proxy = dead, no_proxy = "*" })).status, 200)
  -- a client whose hosts are mapped with connect_to (the simulator) bypasses any proxy
  local c = client { proxy = dead, connect_to = { "graph.microsoft.com:443:127.0.0.1:" .. srv:port() } }
  lu.assertEquals(assert(c:request { url = "https://graph.microsoft.com/ok" }).status, 200)
end
