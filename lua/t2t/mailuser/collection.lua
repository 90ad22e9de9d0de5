-- t2t.mailuser.collection: the file a source admin hands to the target admin (what CSS-val's
-- -CollectSourceOnly zips up, ms-setup-and-prep.md §3.2): everything prepare-users and
-- validate-users read from the source, so the target admin needs no source access.
--
-- JSON Lines, mode 0600 (names and addresses), replaced atomically:
--   line 1: {"t2t": "users-collection", "version": 1, "created": ISO time, "source": {tenant_id,
--            domain, name}, "depth": "full" | "identity", "scope_group": name | null,
--            "scope_known": bool, "count": N}
--   then one user record per line (the fields of t2t.mailuser.export.record and details).
local cjson = require "cjson"

local M = {}
local fmt = string.format

M.KIND, M.VERSION = "users-collection", 1

-- write(path, info, users) -> true | nil, err
function M.write(path, info, users)
  local fs = require "t2t.core.fs"
  local head = { t2t = M.KIND, version = M.VERSION, created = os.date("!%Y-%m-%dT%H:%M:%SZ"), count = #users }
  for k, v in pairs(info) do head[k] = v end
  local tmp = path .. ".t2t-partial"
  local ok, err = fs.write_private(tmp, cjson.encode(head) .. "\n")   -- 0600 from the start
  if not ok then return nil, err end
  local f
  f, err = io.open(tmp, "ab")
  if not f then os.remove(tmp) return nil, err end
  for _, u in ipairs(users) do
    local wok, werr = f:write(cjson.encode(u), "\n")
    if not wok then f:close(); os.remove(tmp) return nil, fmt("cannot write %s: %s", path, tostring(werr)) end
  end
  local cok, cerr = f:close()
  if not cok then os.remove(tmp) return nil, fmt("cannot write %s: %s", path, tostring(cerr)) end
  local rok, rerr = os.rename(tmp, path)
  if not rok then os.remove(tmp) return nil, rerr end
  return true
end

-- read(path) -> info, users | nil, err (a message naming the file and the line).
function M.read(path)
  local text, err = require("t2t.files").read(path, "data")
  if not text then return nil, err end
  local info, users, n = nil, {}, 0
  for line in text:gmatch("([^\n]*)\n?") do
    n = n + 1
    if line:find("%S") then
      local ok, v = pcall(cjson.decode, line)
      if not ok or type(v) ~= "table" then
        return nil, fmt("%s line %d: not JSON (%s)", path, n, ok and "not an object" or tostring(v))
      end
      if not info then
        if v.t2t ~= M.KIND then
          return nil, fmt("%s is not a t2t users collection (export-users writes one)", path)
        end
        if v.version ~= M.VERSION then
          return nil, fmt("%s is a version %s collection; this t2t reads version %d", path, tostring(v.version), M.VERSION)
        end
        info = v
      else
        users[#users + 1] = v
      end
    end
  end
  if not info then return nil, fmt("%s is empty", path) end
  if info.count and math.tointeger(info.count) ~= #users then
    return nil, fmt("%s holds %d users but says %d: the file is cut short (copy it again)", path, #users, info.count)
  end
  return info, users
end

return M
