-- Tasks (t2t.spawn/sleep/parallel/run), cancellation, Ctrl-C and leaks of the scheduler.
local lu = require "luaunit"
local t2t = require "t2t"
local http = require "t2t.http"
local sched = require "t2t.core.sched"
local env = require "tests.lua.handlers.http_env"

local T2T = os.getenv("T2T") or "build/t2t"

local function idle()
  local s = sched.stats()
  return s.tasks == 0 and s.requests == 0 and s.timers == 0 and s.ready == 0
end

TestTasks = {}

-- Sleeping tasks wait on timers side by side: each task, as it starts, sees the timers of all
-- the tasks started before it (a blocking sleep would show none).  No wall-clock bound.
function TestTasks.test_sleep_is_a_timer_not_a_block()
  local t0 = t2t.now()
  local items, pending = {}, {}
  for i = 1, 20 do items[i] = i end
  local res = t2t.parallel(items, function(i)
    pending[i] = sched.stats().timers
    t2t.sleep(0.2)
    return i * 2
  end, { concurrency = 20 })
  for i = 1, 20 do lu.assertEquals(res[i].value, i * 2) end
  lu.assertEquals(pending[20], 19)
  lu.assertTrue(t2t.now() - t0 >= 0.2)        -- a lower bound: no load can make it fail
  t0 = t2t.now()
  t2t.sleep(0.05)                        -- outside a task: runs the loop that long
  lu.assertTrue(t2t.now() - t0 >= 0.05)
  lu.assertTrue(idle())
end

function TestTasks.test_spawn_wait_and_order()
  local log = {}
  local a = t2t.spawn(function(x) t2t.sleep(0.05); log[#log + 1] = "a"; return x, "two" end, 1)
  local b = t2t.spawn(function() log[#log + 1] = "b"; error("b failed") end)
  lu.assertEquals({ a:wait() }, { true, 1, "two" })
  local ok, err = b:wait()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "b failed")
  lu.assertEquals(log, { "b", "a" })
  lu.assertStrContains(b.traceback, "stack traceback")
  lu.assertTrue(t2t.in_task() == false)
  lu.assertTrue(t2t.run(t2t.in_task))
  lu.assertErrorMsgContains("inner", t2t.run, function() error("inner") end)
end

function TestTasks.test_tasks_wait_for_tasks()
  local r = t2t.run(function()
    local inner = t2t.spawn(function() t2t.sleep(0.02); return 42 end)
    local ok, v = inner:wait()
    return ok and v
  end)
  lu.assertEquals(r, 42)
end

function TestTasks.test_cancel_runs_close_variables()
  local closed = {}
  local task = t2t.spawn(function()
    local _ <close> = setmetatable({}, { __close = function() closed[#closed + 1] = "sleeper" end })
    t2t.sleep(30)
  end)
  t2t.sleep(0.01)
  lu.assertEquals(task:status(), "sleeping")
  lu.assertTrue(task:cancel())
  lu.assertEquals(closed, { "sleeper" })
  lu.assertEquals({ task:wait() }, { false, "cancelled" })
  lu.assertFalse(task:cancel())
  lu.assertTrue(idle())
end

function TestTasks.test_semaphore_never_leaks_slots()
  local sem = t2t.semaphore(1)
  local order = {}
  local tasks = {}
  for i = 1, 4 do
    tasks[i] = t2t.spawn(function()
      sem:acquire()
      order[#order + 1] = i
      t2t.sleep(0.02)
      sem:release()
    end)
  end
  t2t.sleep(0.005)
  lu.assertEquals(sem:waiting(), 3)
  tasks[3]:cancel()                      -- waiting: leaves the queue
  lu.assertEquals(sem:waiting(), 2)
  for _, i in ipairs { 1, 2, 4 } do tasks[i]:wait() end
  lu.assertEquals(order, { 1, 2, 4 })
  lu.assertEquals(sem.used, 0)
  lu.assertEquals(sem:waiting(), 0)
end

function TestTasks.test_cancelled_client_request_gives_its_slot_back()
  local s, base = env.start()
  local c = http.client { ca_file = env.certs().ca, concurrency = { initial = 1 } }
  local task = t2t.spawn(function() return c:request { url = base .. "/delay?s=10" } end)
  t2t.sleep(0.2)
  lu.assertEquals(c:limiter(base).sem.used, 1)
  task:cancel()
  lu.assertEquals(c:limiter(base).sem.used, 0)
  lu.assertEquals(assert(c:request { url = base .. "/ok" }).status, 200)
  s:stop()
  lu.assertTrue(idle())
end

function TestTasks.test_request_in_a_plain_coroutine_inside_a_task()
  -- a generator coroutine cannot yield to the loop: the request drives the loop itself
  local s, base = env.start()
  local ca = env.certs().ca
  local body = t2t.run(function()
    local gen = coroutine.wrap(function()
      coroutine.yield(assert(http.request { url = base .. "/ok", ca_file = ca }).body)
    end)
    return gen()
  end)
  s:stop()
  lu.assertEquals(body, "ok")
end

function TestTasks.test_deadlock_is_reported()
  local t = t2t.spawn(function() t2t.park() end)
  lu.assertErrorMsgContains("deadlock", sched.run, t.handle)
  t:cancel()
  lu.assertTrue(idle())
end

-- Ctrl-C while tasks wait on requests and timers: their <close> variables run, the
-- script ends with "interrupted!".
function TestTasks.test_ctrl_c_cancels_tasks_cleanly()
  local s, base = env.start()
  local ca = env.certs().ca
  local script = os.tmpname() .. ".lua"
  local f = assert(io.open(script, "w"))
  f:write(([[
    local t2t, http = require "t2t", require "t2t.http"
    io.stdout:setvbuf("no")
    local items = {1, 2, 3, 4}
    t2t.parallel(items, function(i)
      local _ <close> = setmetatable({}, {__close = function() print("closed " .. i) end})
      if i %% 2 == 0 then t2t.sleep(30) else http.request{url = %q, ca_file = %q} end
    end, {concurrency = 4})
    print("not reached")
  ]]):format(base .. "/delay?s=30", ca))
  f:close()
  local out = env.sh(("%s %s & pid=$!; sleep 1; kill -INT $pid; wait $pid; echo rc=$?")
                     :format(T2T, script))
  os.remove(script)
  s:stop()
  for i = 1, 4 do lu.assertStrContains(out, "closed " .. i) end
  lu.assertStrContains(out, "interrupted!")
  lu.assertNotStrContains(out, "not reached")
  lu.assertNotStrContains(out, "rc=0")
end

-- 10,000 requests (with timeouts and resets among them): the loop ends idle, no easy handle
-- or task is left, and memory does not grow with the count.
function TestTasks.test_ten_thousand_requests_leave_nothing_behind()
  local s, base = env.start()
  local ca = env.certs().ca
  local function rss_kb()
    local f = io.open("/proc/self/statm")
    if not f then return 0 end
    local _, res = f:read("n", "n")
    f:close()
    return (res or 0) * 4
  end
  local function batch(n)
    local items = {}
    for i = 1, n do items[i] = i end
    return t2t.parallel(items, function(i)
      local path = i % 500 == 0 and "/delay?s=1" or i % 499 == 0 and "/reset?n=1000000&key=leak" or "/ok"
      -- only the slow ones get a short timeout: 50 cold TLS handshakes may take longer
      local r, err = http.request { url = base .. path, ca_file = ca,
                                    timeout = path:find("delay") and 0.2 or 30 }
      return r and r.status or err.code
    end, { concurrency = 50 })
  end
  batch(2000)
  collectgarbage()
  local before = rss_kb()
  local res = batch(8000)
  collectgarbage()
  local grown = rss_kb() - before
  s:stop()
  local counts = {}
  for _, r in ipairs(res) do counts[r.value] = (counts[r.value] or 0) + 1 end
  lu.assertTrue((counts[200] or 0) > 7900)
  lu.assertEquals(counts.timeout, 16)
  lu.assertTrue((counts.reset or 0) >= 10)
  lu.assertTrue(idle())
  lu.assertEquals(sched.stats().easy, 0)
  lu.assertTrue(grown < 30000, "RSS grew by " .. grown .. " kB")
end
