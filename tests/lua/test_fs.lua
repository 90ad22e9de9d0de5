-- t2t.core.fs: private files for secrets.
local lu = require "luaunit"
local fs = require "t2t.core.fs"

local function tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("l")
  p:close()
  return d
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

TestFs = {}

function TestFs.test_write_private_creates_0600_and_parents_0700()
  local d = tmpdir()
  local path = d .. "/a/b/secret.txt"
  assert(fs.write_private(path, "s3cret\n"))
  lu.assertEquals(read(path), "s3cret\n")
  lu.assertEquals(fs.mode(path), tonumber("600", 8))
  lu.assertEquals(fs.mode(d .. "/a"), tonumber("700", 8))
  lu.assertEquals(fs.mode(d .. "/a/b"), tonumber("700", 8))
  os.execute("rm -rf '" .. d .. "'")
end

-- regression: the setup runbooks' secret file kept an existing file's 0644 mode
function TestFs.test_existing_readable_file_becomes_private()
  local d = tmpdir()
  local path = d .. "/it's a secret"
  local f = assert(io.open(path, "w")); f:write("old"); f:close()
  assert(fs.chmod(path, tonumber("644", 8)))
  assert(require("t2t.tenant.session").write_secret_file(path, "new-secret"))
  lu.assertEquals(read(path), "new-secret\n")
  lu.assertEquals(fs.mode(path), tonumber("600", 8))
  local p = io.popen("ls -a '" .. d .. "'")
  local names = p:read("a")
  p:close()
  lu.assertNotStrContains(names, ".t2t")           -- no temporary file left behind
  os.execute("rm -rf '" .. d .. "'")
end

function TestFs.test_errors_are_returned()
  local ok, err = fs.write_private("/proc/t2t-cannot/x", "data")
  lu.assertNil(ok)
  lu.assertStrContains(err, "/proc/t2t-cannot")
  lu.assertNil(fs.mode("/nonexistent/x"))
  lu.assertErrorMsgContains("bad argument #2", fs.write_private, "/tmp/x")
end

function TestFs.test_mkdir_leaves_existing_modes()
  local d = tmpdir()
  assert(fs.chmod(d, tonumber("755", 8)))
  assert(fs.mkdir(d .. "/x/y"))
  lu.assertEquals(fs.mode(d), tonumber("755", 8))
  lu.assertEquals(fs.mode(d .. "/x/y"), tonumber("700", 8))
  os.execute("rm -rf '" .. d .. "'")
end

function TestFs.test_list_sorted_without_dots()
  local d = tmpdir()
  for _, n in ipairs { "b.lua", "a.lua", ".hidden" } do assert(fs.write_private(d .. "/" .. n, "")) end
  lu.assertEquals(fs.list(d), { ".hidden", "a.lua", "b.lua" })
  local ok, err = fs.list(d .. "/missing")
  lu.assertNil(ok)
  lu.assertStrContains(err, "cannot read directory")
  os.execute("rm -rf '" .. d .. "'")
end
