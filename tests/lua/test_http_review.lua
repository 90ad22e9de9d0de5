-- Regression tests for defects found reviewing core/sched.c, core/http.c, lua/t2t/http.lua and
-- lua/t2t/init.lua (one test per defect; each failed before its fix).
local lu = require "luaunit"
local cjson = require "cjson"
local t2t = require "t2t"
local http = require "t2t.http"
local sched = require "t2t.core.sched"
local env = require "tests.lua.handlers.http_env"

local srv, base, ca

TestHttpReview = env.class(function(s, b, c) srv, base, ca = s, b, c end)

-- concurrency.initial = 0 made a semaphore of 0 slots: the first request waited forever.
function TestHttpReview.test_limiter_initial_zero_does_not_deadlock()
  local c = http.client { ca_file = ca, concurrency = { initial = 0 } }
  local r = assert(c:request { url = base .. "/ok" })
  lu.assertEquals(r.status, 200)
  lu.assertTrue(c:limiter(base).limit >= 1)
end

-- concurrency.min = 0 let the limit halve towards 0; the next success then added 1/limit
-- (millions) and jumped straight to max while the service was still throttling.
function TestHttpReview.test_limiter_never_below_one()
  local c = http.client { ca_file = ca, concurrency = { initial = 8, min = 0, max = 256 } }
  local lim = c:limiter(base)
  for i = 1, 40 do lim:throttle(t2t.now() + i) end
  lu.assertTrue(lim.limit >= 1, "limit " .. lim.limit)
  t2t.run(function()
    lim.sem:acquire()
    local _ <close> = lim.sem
    lim:success()
  end)
  lu.assertTrue(lim.limit <= 2, "limit after one success " .. lim.limit)
end

-- run_ready() stopped at the task that was last in the ready list when it started; if that
-- task was cancelled meanwhile it never stopped, so a task that yields plainly in a loop
-- starved timers and I/O for ever.
function TestHttpReview.test_cancelling_the_last_ready_task_does_not_starve_timers()
  local fired, spins = false, 0
  local b
  t2t.spawn(function() t2t.sleep(0); fired = true end)
  local s = t2t.spawn(function()
    while not fired and spins < 100000 do
      spins = spins + 1
      coroutine.yield()                  -- a plain yield: lets the others run
    end
  end)
  t2t.spawn(function() b:cancel() end)
  b = t2t.spawn(function() end)          -- last in the ready list
  s:wait()
  lu.assertTrue(fired, "the timer never fired")
  lu.assertTrue(spins < 1000, "spins " .. spins)
  local st = sched.stats()
  lu.assertEquals(st.tasks, 0)
end

-- http.start kept pointers to the method string while user code (a __len metamethod on a
-- header list) could drop it from the options table: the freed string was then used.
function TestHttpReview.test_start_keeps_its_strings_alive_while_user_code_runs()
  local method = string.rep("X", 60)
  local opts
  local junk
  local list = setmetatable({}, { __len = function()
    opts.method = nil
    collectgarbage(); collectgarbage()
    junk = {}
    for i = 1, 2000 do junk[i] = string.rep("Y", 59) .. "Z" end   -- reuse the freed memory
    return 0
  end })
  opts = { url = base .. "/echo", ca_file = ca, method = string.rep("X", 60),
           headers = { ["X-List"] = list } }
  local r = assert(http.request(opts))
  lu.assertEquals(cjson.decode(r.body).method, method)
end

-- The same for the body: an __index metamethod on the options, reached while start() reads
-- "timeout", replaced the body after its pointer was taken.
function TestHttpReview.test_start_keeps_the_body_it_sends()
  local body = string.rep("B", 100)
  local opts = { url = base .. "/echo", ca_file = ca, method = "PUT", body = string.rep("B", 100) }
  setmetatable(opts, { __index = function(t, k)
    if k == "timeout" then
      rawset(t, "body", string.rep("C", 100))
      collectgarbage(); collectgarbage()
      local junk = {}
      for i = 1, 2000 do junk[i] = string.rep("Y", 99) .. "Z" end
    end
    return nil
  end })
  local r = assert(http.request(opts))
  lu.assertEquals(cjson.decode(r.body).body, body)
end

-- user:password@ in a URL is a credential (curl sends it as Basic auth); traces showed it.
function TestHttpReview.test_trace_hides_userinfo()
  lu.assertEquals(http.redact_url("https://user:s3cret@h/p?a=1&sig=abc"), "https://***@h/p?a=1&sig=***")
  lu.assertEquals(http.redact_url("https://h/p?u=a@b"), "https://h/p?u=a@b")
  local events = {}
  local c = http.client { ca_file = ca, trace = function(ev) events[#events + 1] = ev end }
  local url = base:gsub("^https://", "https://me:PASSWORD@") .. "/ok"
  assert(c:request { url = url })
  lu.assertEquals(#events, 1)
  lu.assertNotStrContains(events[1].url, "PASSWORD")
end

-- A Ctrl-C outside the loop (computing at the top level, a REPL line) made the next run cancel
-- every task, including the one it had just been asked to run: t2t.run and client requests
-- failed with "cancelled".  Only tasks spawned before the Ctrl-C belong to the earlier work.
function TestHttpReview.test_ctrl_c_outside_the_loop_spares_later_tasks()
  local T2T = os.getenv("T2T") or "build/t2t"
  local script = os.tmpname() .. ".lua"
  local f = assert(io.open(script, "w"))
  f:write([[
    local t2t = require "t2t"
    io.stdout:setvbuf("no")
    local old = t2t.spawn(function() t2t.sleep(30) end)   -- earlier work
    t2t.sleep(0.01)
    local pid = io.open("/proc/self/stat"):read("n")
    print("first", require("t2t.core.host").pcall(function()   -- catches Ctrl-C (pcall passes it on)
      local p = io.popen("kill -INT " .. pid); p:read("a"); p:close()
      for _ = 1, 1e9 do end
    end))
    print("second", pcall(t2t.run, function() return "ran" end))
    print("old", old:status())
  ]])
  f:close()
  local out = env.sh(("%s %s; echo rc=$?"):format(T2T, script))
  os.remove(script)
  lu.assertStrContains(out, "interrupted!")
  lu.assertStrContains(out, "second\ttrue\tran")
  lu.assertStrContains(out, "old\tdead")
  lu.assertStrContains(out, "rc=0")
end
