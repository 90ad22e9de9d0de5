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

function TestFs.test_open_append_writes_whole_synced_lines_0600()
  local d = tmpdir()
  local path = d .. "/logs/audit.jsonl"
  local f = assert(fs.open_append(path))
  assert(f:write('{"a":1}\n'))
  assert(f:write('{"b":2}\n'))
  f:close()
  lu.assertEquals(read(path), '{"a":1}\n{"b":2}\n')
  lu.assertEquals(fs.mode(path), tonumber("600", 8))
  lu.assertEquals(fs.mode(d .. "/logs"), tonumber("700", 8))
  lu.assertErrorMsgContains("closed file", f.write, f, "x")
  os.execute("rm -rf '" .. d .. "'")
end

-- a planted link must not redirect a write (security issue: writes followed links)
function TestFs.test_open_append_refuses_links_dirs_and_fifos()
  local d = tmpdir()
  local victim = d .. "/victim"
  assert(fs.write_private(victim, "keep\n"))
  os.execute(string.format("ln -s '%s' '%s/link' && mkfifo '%s/fifo'", victim, d, d))
  local ok, err = fs.open_append(d .. "/link")
  lu.assertNil(ok)
  lu.assertStrContains(err, "symbolic link")
  lu.assertEquals(read(victim), "keep\n")
  ok, err = fs.open_append(d)
  lu.assertNil(ok)
  ok, err = fs.open_append(d .. "/fifo")         -- must not block
  lu.assertNil(ok)
  lu.assertStrContains(err, "not a regular file")
  os.execute("rm -rf '" .. d .. "'")
end

function TestFs.test_append_to_a_full_device_fails()
  -- /dev/full is a device: refused at open; a full disk on a regular file reports ENOSPC on write
  local ok, err = fs.open_append("/dev/full")
  lu.assertNil(ok)
  lu.assertStrContains(err, "not a regular file")
end

function TestFs.test_read_file_caps_and_refuses_special_files()
  local d = tmpdir()
  assert(fs.write_private(d .. "/small", "hello"))
  lu.assertEquals(fs.read_file(d .. "/small", 5), "hello")
  local ok, err = fs.read_file(d .. "/small", 4)
  lu.assertNil(ok)
  lu.assertStrContains(err, "5 bytes, more than the 4")
  ok, err = fs.read_file("/dev/zero", 1024)
  lu.assertNil(ok)
  lu.assertStrContains(err, "not a regular file")
  os.execute(string.format("mkfifo '%s/fifo'", d))
  ok, err = fs.read_file(d .. "/fifo", 1024)      -- must not hang
  lu.assertNil(ok)
  lu.assertStrContains(err, "not a regular file")
  ok, err = fs.read_file(d, 1024)
  lu.assertStrContains(err, "is a directory")
  ok, err = fs.read_file(d .. "/missing", 10)
  lu.assertStrContains(err, "No such file")
  os.execute("rm -rf '" .. d .. "'")
end

function TestFs.test_check_write()
  local d = tmpdir()
  lu.assertEquals(fs.check_write(d .. "/new.json"), "new")
  lu.assertEquals(fs.check_write(d .. "/a/b/new.json"), "new")   -- writers make the parents
  assert(fs.write_private(d .. "/old", "x"))
  lu.assertEquals(fs.check_write(d .. "/old"), "existing")
  os.execute(string.format("ln -s '%s/old' '%s/link'", d, d))
  local ok, err = fs.check_write(d .. "/link")
  lu.assertNil(ok)
  lu.assertStrContains(err, "symbolic link")
  ok, err = fs.check_write(d)
  lu.assertStrContains(err, "is a directory")
  ok, err = fs.check_write(d .. "/old/x")          -- a parent that is a file
  lu.assertNil(ok)
  lu.assertStrContains(err, "Not a directory")
  os.execute("rm -rf '" .. d .. "'")
end

-- A writer killed between its temporary file and the rename leaves PATH.t2tXXXXXX: remove_stale
-- removes those, and nothing else (another name, a link, a temp a live writer holds locked).
function TestFs.test_remove_stale_temps_of_write_private()
  local d = tmpdir()
  local path = d .. "/state.json"
  assert(fs.write_private(path, "{}"))
  lu.assertEquals(fs.list(d), { "state.json" }, "write_private leaves no temporary file")
  for _, name in ipairs { "state.json.t2tAbC123", "state.json.t2tZZ", "other.json.t2tAbC123", "state.json.t2tAbC123x" } do
    local f = assert(io.open(d .. "/" .. name, "w")); f:write("x"); f:close()
  end
  os.execute("ln -s state.json '" .. d .. "/state.json.t2tLinked'")
  lu.assertEquals(fs.remove_stale(path), 1)
  lu.assertEquals(fs.list(d), { "other.json.t2tAbC123", "state.json", "state.json.t2tAbC123x",
                                "state.json.t2tLinked", "state.json.t2tZZ" })
  lu.assertEquals(read(path), "{}")
  lu.assertEquals(fs.remove_stale(d .. "/none/state.json"), 0, "no directory: nothing to remove")
  lu.assertEquals(fs.remove_stale("relative-name-in-cwd-" .. tostring(os.time())), 0)
  os.execute("rm -rf '" .. d .. "'")
end
