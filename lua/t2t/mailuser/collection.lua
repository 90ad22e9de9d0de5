-- t2t.mailuser.collection: the file a source admin hands to the target admin (what CSS-val's
-- -CollectSourceOnly zips up, ms-setup-and-prep.md §3.2): everything prepare-users and
-- validate-users read from the source, so the target admin needs no source access.  The runbooks
-- also spool a tenant's users through one, so 100k users are never all held in memory.
--
-- JSON Lines, mode 0600 (names and addresses), written as users arrive and renamed into place
-- at the end (a run killed half-way leaves no file, never half of one):
--   line 1: {"t2t": "users-collection", "version": 1, "created": ISO time, "source": {tenant_id,
--            domain, name}, "depth": "full" | "identity", "scope_group": name | null,
--            "scope_known": bool}
--   then one user record per line (the fields of t2t.mailuser.export.record and details),
--   last:   {"t2t-end": N}  (N users: a file without it was cut short)
local cjson = require "cjson"

local M = {}
local fmt = string.format

M.KIND, M.VERSION = "users-collection", 1

local Writer = {}
Writer.__index = Writer

-- writer(path, info) -> w | nil, err.  w:add(u) -> true | nil, err; w:close() -> true | nil,
-- err (the file appears only now); w:abort() (nothing is left behind).
function M.writer(path, info)
  local head = { t2t = M.KIND, version = M.VERSION, created = os.date("!%Y-%m-%dT%H:%M:%SZ") }
  for k, v in pairs(info or {}) do head[k] = v end
  local tmp = path .. ".t2t-partial"
  local ok, err = require("t2t.core.fs").write_private(tmp, cjson.encode(head) .. "\n")   -- 0600 from the start
  if not ok then return nil, err end
  local f
  f, err = io.open(tmp, "ab")
  if not f then os.remove(tmp) return nil, err end
  return setmetatable({ path = path, tmp = tmp, f = f, n = 0 }, Writer)
end

function Writer:add(u)
  local ok, err = self.f:write(cjson.encode(u), "\n")
  if not ok then return nil, fmt("cannot write %s: %s", self.path, tostring(err)) end
  self.n = self.n + 1
  return true
end

function Writer:close()
  local wok, werr = self.f:write(cjson.encode({ ["t2t-end"] = self.n }), "\n")
  local cok, cerr = self.f:close()
  self.f = nil
  if not (wok and cok) then
    os.remove(self.tmp)
    return nil, fmt("cannot write %s: %s", self.path, tostring(werr or cerr))
  end
  local rok, rerr = os.rename(self.tmp, self.path)
  if not rok then os.remove(self.tmp) return nil, rerr end
  return true
end

function Writer:abort()
  if self.f then self.f:close() self.f = nil end
  os.remove(self.tmp)
end

-- write(path, info, users) -> true | nil, err: a whole list at once.
function M.write(path, info, users)
  local w, err = M.writer(path, info)
  if not w then return nil, err end
  for _, u in ipairs(users) do
    local ok, aerr = w:add(u)
    if not ok then w:abort() return nil, aerr end
  end
  return w:close()
end

-- A file a run is handed must be a regular file (a FIFO would block the read forever): the
-- capped read of t2t.core.fs refuses anything else without opening it for real.
local function regular(path)
  local _, err = require("t2t.core.fs").read_file(path, 0)
  if err and not tostring(err):find("more than", 1, true) then return nil, err end
  return true
end

-- open(path) -> info, next | nil, err.  next() -> the next user, nil at the end, or nil, err (a
-- bad line, or a file cut short).  Users are read one line at a time.
function M.open(path)
  local ok, rerr = regular(path)
  if not ok then return nil, rerr end
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local n, count, ended = 0, 0, false
  local function line()
    while true do
      local l = f:read("l")
      if not l then return nil end
      n = n + 1
      if l:find("%S") then
        local dok, v = pcall(cjson.decode, l)
        if not dok or type(v) ~= "table" then
          return nil, fmt("%s line %d: not JSON (%s)", path, n, dok and "not an object" or tostring(v))
        end
        return v
      end
    end
  end
  local info, herr = line()
  if not info then f:close() return nil, herr or fmt("%s is empty", path) end
  if info.t2t ~= M.KIND then
    f:close()
    return nil, fmt("%s is not a t2t users collection (export-users writes one)", path)
  end
  if info.version ~= M.VERSION then
    f:close()
    return nil, fmt("%s is a version %s collection; this t2t reads version %d", path, tostring(info.version), M.VERSION)
  end
  local function nxt()
    if ended then return nil end
    local v, lerr = line()
    if lerr then f:close() ended = true return nil, lerr end
    if not v then
      f:close()
      ended = true
      return nil, fmt("%s was cut short after %d users (copy it again, or export again)", path, count)
    end
    if v["t2t-end"] then
      f:close()
      ended = true
      if math.tointeger(v["t2t-end"]) ~= count then
        return nil, fmt("%s holds %d users but says %s", path, count, tostring(v["t2t-end"]))
      end
      return nil
    end
    count = count + 1
    return v
  end
  return info, nxt
end

-- read(path) -> info, users | nil, err: the whole file as a list.
function M.read(path)
  local info, nxt = M.open(path)
  if not info then return nil, nxt end
  local users = {}
  while true do
    local u, err = nxt()
    if err then return nil, err end
    if not u then return info, users end
    users[#users + 1] = u
  end
end

return M
