-- A request that is not idempotent reaches the server at most once per attempt t2t decides on
-- (issue 9, defect 1).  libcurl re-sends a request by itself when a REUSED connection closes
-- before any byte of the answer ("Connection died, retrying a fresh connect"), POST included;
-- the /lost route serves the request and then closes the connection without answering, which
-- is exactly that case.  The server counts what it received (/hits).
local lu = require "luaunit"
local cjson = require "cjson"
local http = require "t2t.http"
local env = require "tests.lua.handlers.http_env"

local base, ca
local keyn = 0
local function key() keyn = keyn + 1; return "resend" .. keyn end

local function raw(path, o)
  o = o or {}
  o.url = base .. path
  o.ca_file = ca
  return http.request(o)
end

local function hits(k)
  return cjson.decode(assert(raw("/hits?key=" .. k)).body).n
end

-- A POST on a connection that an earlier request left open (the reuse is what triggers it).
local function post_on_reused(k, o)
  assert(raw("/ok"))
  o = o or {}
  o.method = o.method or "POST"
  o.body = o.body or "{}"
  o.headers = { ["content-type"] = "application/json" }
  return raw("/lost?n=1&key=" .. k, o)
end

TestHttpResend = env.class(function(_, b, c) base, ca = b, c end)

-- The fault this guards against is real: without resend = false, one POST arrives twice.
function TestHttpResend.test_libcurl_resends_a_post_on_a_reused_connection()
  local k = key()
  local r = post_on_reused(k, { resend = true })
  lu.assertNotNil(r, "libcurl re-sent the POST and got the second answer")
  lu.assertEquals(r.body, "ok after 2")
  lu.assertEquals(hits(k), 2)
  lu.assertEquals(r.sends, 2)
end

function TestHttpResend.test_resend_false_refuses_the_second_send()
  local k = key()
  local r, err = post_on_reused(k, { resend = false })
  lu.assertNil(r)
  lu.assertEquals(err.code, "reset")
  lu.assertTrue(err.resend_refused)
  lu.assertStrContains(tostring(err), "not sent again")
  lu.assertEquals(hits(k), 1, "the server saw the POST exactly once")
end

function TestHttpResend.test_client_never_resends_post_or_patch()
  local c = http.client { ca_file = ca, retry = { base_delay = 0.01, max_delay = 0.02 } }
  for _, method in ipairs { "POST", "PATCH" } do
    local k = key()
    assert(c:request { url = base .. "/ok" })
    local r, err = c:request { method = method, url = base .. "/lost?n=1&key=" .. k, body = "{}",
                               headers = { ["content-type"] = "application/json" } }
    lu.assertNil(r, method)
    lu.assertEquals(err.code, "reset")
    lu.assertEquals(err.attempts, 1, method .. ": a lost answer to a " .. method .. " is not retried blindly")
    lu.assertEquals(hits(k), 1, method .. " reached the server once")
  end
end

function TestHttpResend.test_idempotent_requests_may_be_resent()
  local c = http.client { ca_file = ca, retry = { base_delay = 0.01, max_delay = 0.02 } }
  local k = key()
  assert(c:request { url = base .. "/ok" })
  local r = assert(c:request { method = "GET", url = base .. "/lost?n=1&key=" .. k })
  lu.assertEquals(r.status, 200)
  -- a POST the caller declares idempotent (an EXO Get- cmdlet) is treated like a GET
  k = key()
  assert(c:request { url = base .. "/ok" })
  r = assert(c:request { method = "POST", url = base .. "/lost?n=1&key=" .. k, body = "{}",
                         idempotent = true, headers = { ["content-type"] = "application/json" } })
  lu.assertEquals(r.status, 200)
  lu.assertEquals(hits(k), 2)
  lu.assertTrue(http.idempotent("GET"))
  lu.assertFalse(http.idempotent("POST"))
  lu.assertTrue(http.idempotent("POST", { unsafe = true }))
  lu.assertFalse(http.idempotent("PUT", nil, { idempotent = false }))
end

-- A redirect followed by the transfer is a new send, not a re-send.
function TestHttpResend.test_followed_redirects_are_not_refused()
  local r = assert(raw("/redirect?to=/ok", { method = "GET", follow = true, resend = false }))
  lu.assertEquals(r.status, 200)
  lu.assertEquals(r.sends, 2)
end

-- fresh = true: its own connection, closed afterwards (the bench's comparison policy).
function TestHttpResend.test_fresh_connection_is_never_resent()
  local k = key()
  local r, err = post_on_reused(k, { fresh = true })
  lu.assertNil(r)
  lu.assertEquals(err.code, "reset")
  lu.assertEquals(hits(k), 1)
end

-- A wait longer than 2 s before a retry says what, why and until when (issue 9, defect 4: a
-- 41 s retry printed nothing).  The client's sleep is replaced: no real waiting here.
function TestHttpResend.test_long_waits_are_announced()
  local log = require "t2t.log"
  local lines = {}
  log.set_sink { write = function(_, ...) lines[#lines + 1] = table.concat { ... } end }
  local c = http.client { ca_file = ca, sleep = function() end }
  local k = key()
  local r = c:request { url = base .. "/flaky?status=429&after=3&n=1&key=" .. k }
  log.set_sink(io.stderr)
  lu.assertEquals(r.status, 200)
  local text = table.concat(lines, "\n")
  lu.assertStrMatches(text, ".*waiting 3s %(until %d%d:%d%d:%d%d%) before retrying GET https://127%.0%.0%.1:%d+/flaky.*: HTTP 429 %(throttled%).*")
end
