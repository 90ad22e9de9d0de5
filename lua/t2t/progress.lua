-- t2t.progress: progress for long work.  On a terminal, one line redrawn in place on stderr
-- (bar, count, rate, ETA); elsewhere a plain line every 10% so logs stay readable.
--   local bar = progress.new("Preparing users", #users)
--   t2t.parallel(users, fn, {on_progress = function(done, total) bar:update(done) end})
--   bar:finish()
-- While a bar is live on a terminal, what a run prints (ctx:say, the plan's change lines) goes
-- on its own line above it: progress.above(write) clears the bar, writes, and redraws it.
-- Elsewhere stdout is flushed before each bar line, so a log of both keeps their order.
local M = {}
M.__index = M

local live = nil             -- the bar drawn in place on a terminal right now, if any

local function clock()
  local ok, t2t = pcall(require, "t2t")
  if ok and type(t2t) == "table" and t2t.now then return t2t.now() end
  return os.time()
end

-- progress.new(label, total [, {out = file, tty = bool, width = n}])
function M.new(label, total, opts)
  opts = opts or {}
  local tty = opts.tty
  if tty == nil then
    local ok, term = pcall(require, "t2t.core.term")
    tty = ok and term.isatty(2) or false
  end
  return setmetatable({
    label = label, total = math.max(total or 0, 0), done = 0, out = opts.out or io.stderr,
    tty = tty, width = opts.width or 30, start = clock(), last_decile = -1, finished = false,
  }, M)
end

local function fmt_time(s)
  s = math.floor(s + 0.5)
  if s >= 3600 then return string.format("%dh%02dm", s // 3600, s % 3600 // 60) end
  if s >= 60 then return string.format("%dm%02ds", s // 60, s % 60) end
  return string.format("%ds", s)
end

-- The status line for the current state (without control characters).
function M:line()
  local total, done = self.total, self.done
  local frac = total > 0 and math.min(done / total, 1) or 1
  local filled = math.floor(frac * self.width + 0.5)
  local elapsed = math.max(clock() - self.start, 1e-9)
  local rate = done / elapsed
  local eta = (rate > 0 and done < total) and (" eta " .. fmt_time((total - done) / rate)) or ""
  return string.format("%s [%s%s] %d/%d %3d%% %.1f/s%s", self.label, string.rep("#", filled),
                       string.rep(".", self.width - filled), done, total, math.floor(frac * 100),
                       rate, eta)
end

function M:update(done)
  self.done = done or (self.done + 1)
  if self.tty then
    live = self
    self.out:write("\r\27[K", self:line())
    self.out:flush()
  else
    local decile = self.total > 0 and math.floor(self.done * 10 / self.total) or 10
    if decile > self.last_decile then
      self.last_decile = decile
      io.stdout:flush()
      self.out:write(self:line(), "\n")
    end
  end
end

function M:finish()
  if self.finished then return end
  self.finished = true
  if live == self then live = nil end
  if self.tty then self.out:write("\r\27[K", self:line(), "\n")
  elseif self.last_decile < 10 then io.stdout:flush(); self.out:write(self:line(), "\n") end
  self.out:flush()
end

-- progress.above(write): call write() (which prints a line) with the live bar, if any, cleared
-- first and redrawn after, so the line never lands after the bar's text.
function M.above(write)
  local bar = live
  if not bar then return write() end
  bar.out:write("\r\27[K")
  bar.out:flush()
  write()
  io.stdout:flush()
  bar.out:write(bar:line())
  bar.out:flush()
end

return M
