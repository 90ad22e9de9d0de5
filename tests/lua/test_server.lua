-- The embedded HTTPS server (t2t.core.server), driven with the curl CLI over loopback.
-- Certificates: a throwaway CA and a cert for 127.0.0.1/localhost (tests/lua/handlers/http_env).
local lu = require "luaunit"
local cjson = require "cjson"
local server = require "t2t.core.server"

local ECHO = "tests.lua.handlers.server_echo"
local HELLO = "tests.lua.handlers.server_hello"

local env = require "tests.lua.handlers.http_env"     -- test CA and server certificate
local sh, readfile, certs = env.sh, env.readfile, env.certs

local function start(opts)
  local t = certs()
  opts.cert_pem = opts.cert_pem or t.cert
  opts.key_pem = opts.key_pem or t.key
  opts.handler_module = opts.handler_module or ECHO
  return assert(server.start(opts))
end

local function base(s) return "https://127.0.0.1:" .. s:port() end

-- curl(ARGS) -> output, exit code; verifies TLS against the test CA.
local function curl(args)
  return sh("curl -sS --max-time 20 --cacert " .. certs().ca .. " " .. args)
end

-- Wait (bounded) until pred() holds; no timing is asserted, this only avoids sleeping blind.
local function wait_for(pred, what)
  for _ = 1, 400 do
    if pred() then return end
    os.execute("sleep 0.05")
  end
  lu.fail("timed out waiting for " .. what)
end

TestServer = {}

function TestServer.teardownClass()
  env.cleanup()
end

function TestServer.test_request_and_response_round_trip()
  local s <close> = start {}
  local out, code = curl("-i -X PUT -H 'X-Foo: Bar' -H 'Accept: a/b' --data-binary 'hello=1' '" ..
    base(s) .. "/echo?status=201&a=1&b=x%20y&a=2&c&d=p%2Bq+r'")
  lu.assertEquals(code, 0, out)
  lu.assertStrContains(out, "HTTP/1.1 201")
  lu.assertStrContains(out, "x-multi: one\r\nx-multi: two\r\n")
  lu.assertStrContains(out, "x-method: PUT\r\n")
  local req = cjson.decode(out:match("\r\n\r\n(.*)$"))
  lu.assertEquals(req.method, "PUT")
  lu.assertEquals(req.path, "/echo")
  lu.assertEquals(req.query, "status=201&a=1&b=x%20y&a=2&c&d=p%2Bq+r")
  lu.assertEquals(req.args, { status = "201", a = { "1", "2" }, b = "x y", c = "", d = "p+q r" })
  lu.assertEquals(req.body, "hello=1")
  lu.assertEquals(req.headers["x-foo"], "Bar")
  lu.assertEquals(req.headers.accept, "a/b")
  lu.assertEquals(req.headers.host, "127.0.0.1:" .. s:port())
  lu.assertStrMatches(req.peer, "127%.0%.0%.1:%d+")
  lu.assertEquals(req.version, "HTTP/1.1")
end

function TestServer.test_raw_path_and_localhost_name()
  local s <close> = start {}
  local out, code = curl("'https://localhost:" .. s:port() .. "/echo/../echo%2Fx?q=%41'")
  lu.assertEquals(code, 0, out)
  -- curl squashes the dot segment itself; the escape survives: the handler sees the wire form
  local req = cjson.decode(out)
  lu.assertEquals(req.path, "/echo%2Fx")
  lu.assertEquals(req.args.q, "A")
end

function TestServer.test_port_zero_gives_real_distinct_ports()
  local a <close> = start {}
  local b <close> = start { port = 0 }
  lu.assertTrue(a:port() > 0 and b:port() > 0)
  lu.assertNotEquals(a:port(), b:port())
  lu.assertStrContains(tostring(a), "t2t.server (port ")
end

function TestServer.test_function_handler_arg_and_empty_status()
  local f <close> = start { handler_module = HELLO }
  lu.assertEquals((curl(base(f) .. "/x")), "hello /x")
  local s <close> = start { handler_arg = "the-arg" }
  lu.assertEquals((curl(base(s) .. "/arg")), "the-arg")
  local out = curl("-i " .. base(s) .. "/empty")
  lu.assertStrContains(out, "HTTP/1.1 204")
  local t <close> = start { handler_arg = { users = 3, seed = "x", faults = { 1.5, true } } }
  lu.assertEquals(cjson.decode((curl(base(t) .. "/arg"))),
    { users = 3, seed = "x", faults = { 1.5, true } })
  lu.assertErrorMsgContains("cannot pass a function",
    function() assert(server.start { handler_module = ECHO, handler_arg = { print } }) end)
  local cyc = {}
  cyc.self = cyc
  lu.assertErrorMsgContains("too deep",
    function() assert(server.start { handler_module = ECHO, handler_arg = cyc }) end)
end

function TestServer.test_plain_http_without_cert()
  local s <close> = assert(server.start { handler_module = HELLO })
  local out, code = sh("curl -sS http://127.0.0.1:" .. s:port() .. "/plain")
  lu.assertEquals(code, 0, out)
  lu.assertEquals(out, "hello /plain")
end

function TestServer.test_delayed_response_does_not_block_a_fast_one()
  local s <close> = start {}
  local order = certs().dir .. "/order"
  local ca = certs().ca
  -- the slow request starts first; the fast one must come back before it
  local out, code = sh(("rm -f %s; (curl -sS --cacert %s %s/delay?s=1.5 >/dev/null && echo slow >> %s) & " ..
    "sleep 0.2; curl -sS --cacert %s %s/fast >/dev/null && echo fast >> %s; wait"):format(
    order, ca, base(s), order, ca, base(s), order))
  lu.assertEquals(code, 0, out)
  lu.assertEquals(readfile(order), "fast\nslow\n")
  lu.assertEquals(s:stats().delayed, 1)
end

function TestServer.test_one_thread_holds_many_delayed_responses()
  local s <close> = start {}
  -- 400 TLS handshakes must all land inside one delay: 8 s leaves room for a sanitized build on
  -- a loaded machine (3 s did not), and nothing here asserts on time.
  local n, per = 400, 200
  local urls = {}
  for i = 1, per do urls[#urls + 1] = ("url = \"%s/delay?s=8&i=%d\"\noutput = \"/dev/null\""):format(base(s), i) end
  local cfg = certs().dir .. "/many.cfg"
  local f = assert(io.open(cfg, "w"))
  f:write(table.concat(urls, "\n"), "\n")
  f:close()
  local cmd = ("curl -sS --parallel --parallel-max %d --cacert %s -K %s -w '%%{http_code}\\n'"):format(
    per, certs().ca, cfg)
  local log = certs().dir .. "/many.out"
  os.execute(("(%s & %s; wait) > %s 2>&1 &"):format(cmd, cmd, log))
  -- both curls started at once: wait until the server holds all of them suspended together
  local peak = 0
  wait_for(function()
    peak = math.max(peak, s:stats().pending)
    return peak >= n * 3 / 4
  end, "delayed responses to pile up")
  wait_for(function()
    local st = s:stats()
    return st.requests >= n and st.pending == 0
  end, "all delayed responses")
  wait_for(function() return select(2, readfile(log):gsub("200\n", "")) == n end, "curl output")
end

function TestServer.test_abort_before_and_mid_are_errors_for_the_client()
  local s <close> = start {}
  local out, code = curl(base(s) .. "/abort/before")
  lu.assertNotEquals(code, 0, out)
  out, code = curl("-o /dev/null " .. base(s) .. "/abort/mid")
  lu.assertEquals(code, 18, out)                     -- partial file: Content-Length not met
  out, code = curl("-o /dev/null " .. base(s) .. "/abort/mid-empty")
  lu.assertEquals(code, 18, out)
  -- the server is unharmed
  lu.assertEquals((curl(base(s) .. "/fast")), "fast")
  lu.assertEquals(s:stats().aborted, 3)
end

function TestServer.test_handler_error_is_500_with_the_message()
  local s <close> = start { log_errors = false }
  local out = curl("-i " .. base(s) .. "/error")
  lu.assertStrContains(out, "HTTP/1.1 500")
  lu.assertStrContains(out, "Content-Type: text/plain")
  lu.assertStrContains(out, "boom in handler")
  out = curl("-i " .. base(s) .. "/bad")
  lu.assertStrContains(out, "HTTP/1.1 500")
  lu.assertStrContains(out, "handler returned number")
  out = curl("-i " .. base(s) .. "/badstatus")
  lu.assertStrContains(out, "bad status 42")
  lu.assertEquals(s:stats().errors, 3)
  lu.assertEquals((curl(base(s) .. "/fast")), "fast")
end

function TestServer.test_start_failures()
  local s, err = server.start { handler_module = "tests.lua.handlers.server_badinit", handler_arg = 7 }
  lu.assertNil(s)
  lu.assertStrContains(err, "init refused 7")
  s, err = server.start { handler_module = "tests.lua.handlers.no_such_module" }
  lu.assertNil(s)
  lu.assertStrContains(err, "no_such_module")
  lu.assertErrorMsgContains("handler_module", server.start, {})
  lu.assertErrorMsgContains("go together", server.start, { handler_module = HELLO, cert_pem = "x" })
  lu.assertErrorMsgContains("bind", server.start, { handler_module = HELLO, bind = "nowhere" })
  lu.assertErrorMsgContains("port", server.start, { handler_module = HELLO, port = 70000 })
  local a <close> = start {}
  s, err = server.start { handler_module = HELLO, port = a:port() }
  lu.assertNil(s)
  lu.assertStrContains(err, "server: ")
  s, err = server.start { handler_module = HELLO, cert_pem = "junk", key_pem = "junk" }
  lu.assertNil(s)
  lu.assertStrContains(err, "server: ")
end

function TestServer.test_stop_is_idempotent_and_closes_the_port()
  local s = start {}
  local port = s:port()
  lu.assertEquals((curl(base(s) .. "/fast")), "fast")
  s:stop()
  s:stop()
  lu.assertStrContains(tostring(s), "stopped")
  lu.assertErrorMsgContains("stopped server", s.port, s)
  local _, code = sh("curl -sS --max-time 5 -k https://127.0.0.1:" .. port .. "/fast")
  lu.assertNotEquals(code, 0)
end

function TestServer.test_stop_with_delayed_responses_pending()
  local s = start {}
  local log = certs().dir .. "/pending.out"
  os.execute(("curl -sS --max-time 20 --cacert %s %s/delay?s=30 > %s 2>&1 &"):format(
    certs().ca, base(s), log))
  wait_for(function() return s:stats().pending == 1 end, "the delayed request")
  s:stop()                                            -- must not wait for the 30 s
  wait_for(function() return readfile(log) ~= "" end, "curl to see the close")
  lu.assertStrContains(readfile(log), "curl: (")
end

function TestServer.test_many_servers_started_and_stopped()
  for i = 1, 25 do
    local s <close> = start { handler_module = HELLO, threads = (i % 3) + 1 }
    if i % 5 == 0 then lu.assertEquals((curl(base(s) .. "/n")), "hello /n") end
  end
  for _ = 1, 25 do server.start { handler_module = HELLO } end  -- left to the collector
  collectgarbage()
  collectgarbage()
end

function TestServer.test_thread_pool_serves_many_requests()
  local s <close> = start { threads = 2 }
  local out, code = curl(("--parallel --parallel-max 8 -w '%%{http_code}\\n' -o /dev/null '%s/fast?[1-50]'"):format(base(s)))
  lu.assertEquals(code, 0, out)
  lu.assertEquals(select(2, out:gsub("200\n", "")), 50, out)
  lu.assertEquals(s:stats().requests, 50)
  -- delayed responses resume on the pool's threads too
  out, code = curl(("--parallel -w '%%{http_code}\\n' -o /dev/null '%s/delay?s=0.3&[1-20]'"):format(base(s)))
  lu.assertEquals(code, 0, out)
  lu.assertEquals(select(2, out:gsub("200\n", "")), 20, out)
  lu.assertEquals(s:stats().delayed, 20)
end
