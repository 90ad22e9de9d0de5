-- t2t: tasks over the C scheduler (t2t.core.sched) — spawn, sleep, parallel, run.
--
-- A task is a coroutine the scheduler resumes.  Code that waits (http.request, t2t.sleep,
-- task:wait, a semaphore) yields sched.YIELD inside a task, so other tasks run meanwhile;
-- outside any task (a runbook's top level, a REPL line, `t2t -e`) the same call drives the
-- loop itself until it is done.  So the same code works in both places.
local sched = require "t2t.core.sched"

local M = {}
local YIELD = sched.YIELD
local current, wake = sched.current, sched.wake

M.YIELD = YIELD
M.now = sched.now                 -- monotonic seconds (float)
M.stats = sched.stats

-- true inside a task (where waiting yields), false outside (where waiting drives the loop).
function M.in_task()
  return current() ~= nil
end

-- Park the running task until t2t.wake(task, ...) — returns those values.  Tasks only.
function M.park()
  assert(current(), "t2t.park: only inside a task")
  return coroutine.yield(YIELD, "park")
end

M.wake = wake

-- Wait for seconds without blocking other tasks (outside a task: run the loop that long).
function M.sleep(seconds)
  seconds = tonumber(seconds) or error("t2t.sleep: seconds expected", 2)
  if current() then
    coroutine.yield(YIELD, "sleep", seconds)
  else
    sched.run(seconds)
  end
end

-- Let the other ready tasks run, then continue.
function M.yield()
  if current() then coroutine.yield(YIELD, "sleep", 0) else sched.run(0) end
end

-- Wait until an http.c request is finished (used by t2t.http).
function M.await_io(req)
  if current() then
    coroutine.yield(YIELD, "io", req)
  else
    sched.run(req)
  end
end

---------------------------------------------------------------------------------------------
-- Tasks

local Task = {}
Task.__index = Task

-- Errors keep their value (tables stay tables); the traceback is kept beside it.
local function handler(err)
  local tb = debug.traceback(type(err) == "string" and err or tostring(err), 2)
  return { err = err, traceback = tb }
end

local function finish(task, ok, ...)
  task.done = true
  task.ok = ok
  if ok then
    task.values = table.pack(...)
  else
    local e = ...
    task.err, task.traceback = e.err, e.traceback
  end
  local waiters = task.waiters
  task.waiters = nil
  for i = 1, #waiters do wake(waiters[i]) end
end

-- t2t.spawn(fn, ...) -> task.  fn(...) runs as a task; an error ends only this task and is
-- kept in it (task:wait() returns false, err).
function M.spawn(fn, ...)
  assert(type(fn) == "function" or (getmetatable(fn) or {}).__call, "t2t.spawn: function expected")
  local task = setmetatable({ done = false, waiters = {} }, Task)
  task.handle = sched.spawn(function(...)
    finish(task, xpcall(fn, handler, ...))
  end, ...)
  return task
end

-- task:wait() -> true, values... | false, err (also "cancelled").
function Task:wait()
  while not self.done do
    local me = current()
    if me then
      local w = self.waiters
      w[#w + 1] = me
      coroutine.yield(YIELD, "park")
    else
      sched.run(self.handle)
      if not self.done then            -- closed from outside (Ctrl-C, cancel)
        self.done, self.ok, self.err = true, false, "cancelled"
      end
    end
  end
  if self.ok then return true, table.unpack(self.values, 1, self.values.n) end
  return false, self.err
end

-- task:cancel(): close it now (its <close> variables run); waiters see false, "cancelled".
function Task:cancel()
  if self.done then return false end
  if sched.status(self.handle) == "running" then error("t2t: a task cannot cancel itself", 2) end
  sched.cancel(self.handle)
  if not self.done then finish(self, false, { err = "cancelled" }) end
  return true
end

function Task:status()
  return sched.status(self.handle)
end

-- t2t.run(fn, ...) -> fn's results.  Runs fn as a task and waits; errors are raised again.
-- Inside a task it is a plain call.  Lets task-only code (semaphores) run anywhere.
function M.run(fn, ...)
  if current() then return fn(...) end
  local task = M.spawn(fn, ...)
  local function rethrow(ok, ...)
    if ok then return ... end
    error((...), 0)
  end
  return rethrow(task:wait())
end

-- Drive the loop until no task, timer or request is left (for code that spawns and forgets).
function M.wait_all()
  if current() then error("t2t.wait_all: not inside a task", 2) end
  sched.run()
end

---------------------------------------------------------------------------------------------
-- A counting semaphore whose limit may change (adaptive concurrency uses it).

local Sem = {}
Sem.__index = Sem

function M.semaphore(limit)
  return setmetatable({ limit = limit or 1, used = 0, first = 1, last = 0, q = {}, nwait = 0 }, Sem)
end

-- Hand free slots to waiters, oldest first.
function Sem:_grant()
  local q = self.q
  while self.used < self.limit and self.first <= self.last do
    local w = q[self.first]
    q[self.first] = nil
    self.first = self.first + 1
    if w then
      w.granted = true
      self.used = self.used + 1
      self.nwait = self.nwait - 1
      wake(w.task)
    end
  end
end

-- Take a slot, waiting (tasks only) while all are used.  A waiter cancelled after being
-- granted a slot gives it back, so cancellation never leaks slots.
function Sem:acquire()
  if self.used < self.limit and self.first > self.last then
    self.used = self.used + 1
    return
  end
  local me = current() or error("t2t.semaphore: acquire would block outside a task", 2)
  local w = { task = me, granted = false }
  self.last = self.last + 1
  local pos = self.last
  self.q[pos] = w
  self.nwait = self.nwait + 1
  local taken = false
  local _ <close> = setmetatable({}, { __close = function()
    if taken then return end
    if w.granted then
      self:release()
    else
      self.q[pos] = false
      self.nwait = self.nwait - 1
    end
  end })
  while not w.granted do coroutine.yield(YIELD, "park") end
  taken = true
end

function Sem:release()
  self.used = self.used - 1
  self:_grant()
end

-- `sem:acquire(); local _ <close> = sem` releases on every way out, cancellation included.
Sem.__close = Sem.release

function Sem:set_limit(n)
  self.limit = n
  self:_grant()
end

function Sem:waiting()
  return self.nwait
end

---------------------------------------------------------------------------------------------
-- parallel

-- t2t.parallel(items, fn, {concurrency = N, on_progress = f}) -> results
-- fn(item, index) runs for every item with at most N at once; results[i] is
-- {ok = true, value = first result} or {ok = false, err = error, traceback = ...}, in input
-- order.  One failing item never stops the others.  on_progress(done, total, index, result)
-- is called after each item (its errors are raised after all items finish).
function M.parallel(items, fn, opts)
  assert(type(items) == "table", "t2t.parallel: items table expected")
  assert(fn, "t2t.parallel: function expected")
  opts = opts or {}
  local n = #items
  local conc = math.max(1, math.floor(tonumber(opts.concurrency) or 8))
  local progress = opts.on_progress
  local results = {}
  if n == 0 then return results end
  return M.run(function()
    local nexti, done, progress_err = 1, 0, nil
    local workers = {}
    local _ <close> = setmetatable({}, { __close = function()
      for _, w in ipairs(workers) do if not w.done then w:cancel() end end
    end })
    local function worker()
      while nexti <= n do
        local i = nexti
        nexti = i + 1
        local ok, r = xpcall(fn, handler, items[i], i)
        results[i] = ok and { ok = true, value = r } or { ok = false, err = r.err, traceback = r.traceback }
        done = done + 1
        if progress and not progress_err then
          local pok, perr = pcall(progress, done, n, i, results[i])
          if not pok then progress_err = perr end
        end
      end
    end
    for w = 1, math.min(conc, n) do workers[w] = M.spawn(worker) end
    for _, w in ipairs(workers) do
      local ok, err = w:wait()
      if not ok and err ~= "cancelled" then error(err, 0) end
    end
    if progress_err then error(progress_err, 0) end
    return results
  end)
end

return M
