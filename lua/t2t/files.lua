-- t2t.files: reading the files a run is handed (config, secrets, keys, hand-off, state) —
-- regular files only, never blocking on a FIFO or device, each kind with a size cap, and one
-- clear message when a file is refused.  (t2t.core.fs does the reading; this is the policy.)
local fs = require "t2t.core.fs"

local M = {}

local KiB, MiB = 1024, 1024 * 1024

-- kind -> {cap in bytes, what it is called in messages}.  The caps are far above any real
-- file of the kind and far below what would hurt: a config of a thousand profiles is ~300 KiB,
-- a PFX with a long chain ~20 KiB, the simulator's state for 100,000 mailboxes ~250 MiB.
M.KINDS = {
  config = { 1 * MiB, "config file" },
  secret = { 64 * KiB, "secret file" },
  passphrase = { 64 * KiB, "passphrase file" },
  credential = { 4 * MiB, "certificate or key file" },
  handoff = { 1 * MiB, "hand-off file" },
  sim_state = { 2048 * MiB, "simulator state file" },
  runbook = { 16 * MiB, "runbook file" },
  data = { 256 * MiB, "file" },
}

-- cap(kind) -> the size cap in bytes for that kind.
function M.cap(kind)
  local k = M.KINDS[kind]
  assert(k, "t2t.files: unknown kind " .. tostring(kind))
  return k[1]
end

-- read(path, kind) -> contents | nil, err.  err names the file and why it was refused (not a
-- regular file, larger than the kind allows, unreadable) in one line.
function M.read(path, kind)
  local cap = M.cap(kind)
  if type(path) ~= "string" or path == "" then return nil, M.KINDS[kind][2] .. ": no path given" end
  local data, err = fs.read_file(path, cap)
  if not data then
    return nil, (tostring(err):gsub("^cannot read ", "cannot read the " .. M.KINDS[kind][2] .. " ", 1))
  end
  return data
end

-- first_line(path, kind) -> the first line without trailing white space | nil, err: how
-- secrets and passphrases are kept in files.
function M.first_line(path, kind)
  local data, err = M.read(path, kind)
  if not data then return nil, err end
  return (data:match("^[^\n]*"):gsub("%s+$", ""))
end

return M
