-- Run every tests/lua/test_*.lua with LuaUnit inside the t2t binary.
--   build/t2t tests/lua/run.lua [PATTERN]      (PATTERN filters file names)
-- Prints TAP lines that tests/run.sh counts.
-- the helper modules (tests.lua.handlers.*) live in the source tree; t2t searches no module in
-- the current directory unless told, so say it here
package.path = "./?.lua;" .. package.path
local lu = require "luaunit"
local pattern = arg and arg[1]
local dir = "tests/lua"
local p = io.popen('ls ' .. dir .. '/test_*.lua 2>/dev/null')
local files = {}
for f in p:lines() do
  if not pattern or f:find(pattern, 1, true) then files[#files + 1] = f end
end
p:close()
table.sort(files)
for _, f in ipairs(files) do
  local fn = assert(loadfile(f, "t"))
  fn()
end
local runner = lu.LuaUnit.new()
runner:setOutputType("tap")
os.exit(runner:runSuite("--verbose"), true)
