local lu = require "luaunit"
local progress = require "t2t.progress"

local function sink()
  local buf = {}
  return buf, { write = function(self, ...) for _, s in ipairs { ... } do buf[#buf + 1] = s end return self end,
                flush = function() end }
end

TestProgress = {}

function TestProgress.test_plain_output_every_tenth()
  local buf, out = sink()
  local bar = progress.new("Users", 100, { out = out, tty = false, width = 10 })
  for i = 1, 100 do bar:update(i) end
  bar:finish()
  local text = table.concat(buf)
  local lines = select(2, text:gsub("\n", "\n"))
  lu.assertEquals(lines, 11)                    -- 0%..100% once each, finish adds nothing
  lu.assertStrContains(text, "Users [##########] 100/100 100%")
end

function TestProgress.test_tty_redraws_in_place()
  local buf, out = sink()
  local bar = progress.new("Batch", 4, { out = out, tty = true, width = 4 })
  bar:update(2)
  lu.assertStrContains(table.concat(buf), "\r\27[KBatch [##..] 2/4  50%")
  bar:finish()
  lu.assertEquals(buf[#buf], "\n")
end

function TestProgress.test_empty_total()
  local buf, out = sink()
  local bar = progress.new("Nothing", 0, { out = out, tty = false })
  bar:finish()
  lu.assertStrContains(table.concat(buf), "0/0 100%")
end

-- what a run prints while a bar is live on a terminal goes above it, never after its text
function TestProgress.test_above_clears_and_redraws_the_live_bar()
  local buf, out = sink()
  local bar = progress.new("Users", 4, { out = out, tty = true, width = 4 })
  bar:update(1)
  progress.above(function() buf[#buf + 1] = "<line>\n" end)
  local text = table.concat(buf)
  lu.assertStrContains(text, "1/4  25%")
  lu.assertStrContains(text, "\r\27[K<line>\nUsers [#...] 1/4")
  bar:finish()
  local n = #buf
  progress.above(function() buf[#buf + 1] = "<after>\n" end)   -- no live bar: just the line
  lu.assertEquals(buf[n + 1], "<after>\n")
  lu.assertEquals(#buf, n + 1)
end
