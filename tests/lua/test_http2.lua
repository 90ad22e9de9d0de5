-- HTTP/2: what t2t.http negotiates with Microsoft's front doors (ALPN h2 over TLS).  The
-- embedded server speaks HTTP/1.1 only, so this runs against nghttpd (Debian's
-- nghttp2-server) with the test CA's certificate, reached as graph.microsoft.com through
-- connect_to exactly as under the simulator.  Skipped when nghttpd is not installed.
local lu = require "luaunit"
local t2t = require "t2t"
local http = require "t2t.http"
local env = require "tests.lua.handlers.http_env"

local have = env.sh("command -v nghttpd") ~= ""
local dir, pid, port, ca

local write = env.writefile

local function client(o)
  o = o or {}
  o.ca_file, o.connect_to = ca, { "graph.microsoft.com:443:127.0.0.1:" .. port }
  return http.client(o)
end

-- Start nghttpd on a free port: try a few random ones; each is ready when a request answers.
local function start()
  local t = env.certs()
  ca = t.ca
  dir = t.dir .. "/h2"
  assert(os.execute("mkdir -p " .. dir .. "/docs"))
  write(dir .. "/srv.key", t.key)
  write(dir .. "/srv.pem", t.cert)
  local body = {}
  for i = 1, 5000 do body[i] = string.format("line %05d of the h2 test document\n", i) end
  write(dir .. "/docs/doc.txt", table.concat(body))
  math.randomseed(os.time(), os.clock() * 1e6)
  for _ = 1, 5 do
    port = math.random(30000, 60000)
    local p = assert(io.popen(string.format(
      "nghttpd --echo-upload --htdocs=%s/docs %d %s/srv.key %s/srv.pem >%s/log 2>&1 & echo $!",
      dir, port, dir, dir, dir)))
    pid = p:read("l")
    p:close()
    for _ = 1, 50 do
      local r = http.request { url = "https://graph.microsoft.com/doc.txt", ca_file = ca, method = "HEAD",
                               connect_to = { "graph.microsoft.com:443:127.0.0.1:" .. port } }
      if r then return end
      if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end   -- port taken
      t2t.sleep(0.05)
    end
    os.execute("kill " .. pid .. " 2>/dev/null")
  end
  error("nghttpd did not start: " .. env.readfile(dir .. "/log"))
end

TestHttp2 = {}

function TestHttp2.setupClass()
  if have then start() end
end

function TestHttp2.teardownClass()
  if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
  pid = nil
  env.cleanup()
end

function TestHttp2.setUp()
  lu.skipIf(not have, "nghttpd (Debian nghttp2-server) is not installed")
end

function TestHttp2.test_get_negotiates_h2()
  local r = assert(client():request { url = "https://graph.microsoft.com/doc.txt" })
  lu.assertEquals(r.status, 200)
  lu.assertEquals(r.http_version, "2")
  lu.assertEquals(r.body, env.readfile(dir .. "/docs/doc.txt"))
  lu.assertEquals(tonumber(r.headers["content-length"]), #r.body)
  for name in pairs(r.headers) do lu.assertEquals(name, name:lower()) end
  lu.assertNil(r.headers[":status"])                 -- pseudo-headers are not headers
  local miss = assert(client():request { url = "https://graph.microsoft.com/none" })
  lu.assertEquals(miss.status, 404)
  lu.assertEquals(miss.http_version, "2")
  local head = assert(client():request { method = "HEAD", url = "https://graph.microsoft.com/doc.txt" })
  lu.assertEquals(head.status, 200)
  lu.assertEquals(head.body, "")
end

function TestHttp2.test_post_body_round_trips()
  local chunks = {}
  for i = 1, 4096 do chunks[i] = string.char(i % 256) .. string.format("%07d", i) end
  local body = table.concat(chunks)                  -- 32 KiB, every byte value, NUL included
  local r = assert(client():request { method = "POST", url = "https://graph.microsoft.com/doc.txt",
                                      headers = { ["Content-Type"] = "application/octet-stream" },
                                      body = body, retry = false })
  lu.assertEquals(r.status, 200)
  lu.assertEquals(r.http_version, "2")
  lu.assertEquals(#r.body, #body)
  lu.assertTrue(r.body == body, "echoed body differs")
end

function TestHttp2.test_parallel_requests_share_the_loop()
  local c = client()
  local want = env.readfile(dir .. "/docs/doc.txt")
  local items = {}
  for i = 1, 40 do items[i] = i end
  local res = t2t.parallel(items, function(i)
    local r = assert(c:request { url = "https://graph.microsoft.com/doc.txt?i=" .. i })
    return r.http_version .. " " .. r.status .. " " .. tostring(r.body == want)
  end, { concurrency = 20 })
  for i = 1, 40 do lu.assertEquals(res[i].value, "2 200 true", "request " .. i) end
  lu.assertEquals(c.stats.requests, 40)
  lu.assertEquals(c.stats.retries, 0)
end
