-- t2t.sim.dnsserver: a real authoritative DNS server on loopback for the simulator and the
-- tests — Knot DNS (Debian package knot), started and stopped by t2t.  See docs/dkim.md.
--
--   local ds = require "t2t.sim.dnsserver"
--   local srv = assert(ds.start { zones = { ["contoso.com"] = { records = {...} } } })
--   srv.address                 "127.0.0.1:PORT" (what --dns and dns.configure take)
--   srv.tsig                    { name, algorithm = "hmac-sha256", secret = base64 } for RFC 2136
--   srv:set_zones(zones)        rewrite the zones that changed and reload them
--   srv:zone_text(name)         a dynamic zone as the server now holds it (after updates)
--   srv:stop()
--
-- A zone: { records = { {name, type, ttl, data}, ... }, dynamic = bool, broken = bool, text = s }
-- (name relative to the zone or absolute with a final dot, "@" the apex; data as in a zone file
-- for A/AAAA/CNAME/NS/MX ("10 host."), the text itself for TXT: split into 255-byte strings
-- here).  dynamic zones accept RFC 2136 updates signed with srv.tsig and are never rewritten
-- by set_zones (their content then belongs to whoever updates them); text gives a zone file
-- as is; broken writes a file the server refuses, so it answers SERVFAIL for that zone.
--
-- Why Knot: it answers RFC 2136 updates with TSIG (NSD does not), starts in milliseconds
-- without root or a system service, reloads zones one by one, and Debian packages it.
local M = {}

local SBIN = { "/usr/sbin/", "/sbin/", "/usr/local/sbin/" }

local function find_program(name)
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local p = dir .. "/" .. name
    local f = io.open(p, "rb")
    if f then f:close() return p end
  end
  for _, dir in ipairs(SBIN) do
    local f = io.open(dir .. name, "rb")
    if f then f:close() return dir .. name end
  end
end

-- available() -> knotd path, knotc path | nil, why.
function M.available()
  local d, c = find_program("knotd"), find_program("knotc")
  if d and c then return d, c end
  return nil, "Knot DNS is not installed (apt-get install knot): no DNS server for the simulator"
end

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function write(path, text)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  f:write(text)
  f:close()
  return true
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

---------------------------------------------------------------------------------------------
-- Zone files

local function quote_txt(text)
  local parts = {}
  for i = 1, math.max(1, #text), 255 do
    local chunk = text:sub(i, i + 254):gsub('[\\"]', "\\%0"):gsub("[%c\128-\255]", function(c)
      return string.format("\\%03d", c:byte())
    end)
    parts[#parts + 1] = '"' .. chunk .. '"'
  end
  return table.concat(parts, " ")
end

local function owner(name, zone)
  if name == nil or name == "@" or name == "" then return zone .. "." end
  if name:sub(-1) == "." then return name end
  local lname, lzone = name:lower(), zone:lower()
  if lname == lzone or lname:sub(-#lzone - 1) == "." .. lzone then return name .. "." end
  return name .. "." .. zone .. "."
end

-- zone_file(zone, spec, serial) -> the text of a zone file.
function M.zone_file(zone, spec, serial)
  if spec.text then return spec.text end
  if spec.broken then return "$ORIGIN " .. zone .. ".\n@ SOA {{{ broken on purpose\n" end
  local b = { "$ORIGIN " .. zone .. ".", "$TTL 3600",
              string.format("@ 3600 SOA ns1.%s. hostmaster.%s. %d 3600 600 86400 300", zone, zone, serial),
              "@ 3600 NS ns1." .. zone .. "." }
  local has_ns1 = false
  for _, r in ipairs(spec.records or {}) do
    local t = r.type:upper()
    local data = t == "TXT" and quote_txt(r.data) or r.data
    local own = owner(r.name, zone)
    if own:lower() == ("ns1." .. zone .. "."):lower() and t == "A" then has_ns1 = true end
    b[#b + 1] = string.format("%s %d %s %s", own, r.ttl or 3600, t, data)
  end
  if not has_ns1 then b[#b + 1] = "ns1 3600 A 127.0.0.1" end
  return table.concat(b, "\n") .. "\n"
end

---------------------------------------------------------------------------------------------
-- The server

local Server = {}
Server.__index = Server

local function random_port()
  local c = require "t2t.crypto"
  local b = c.random_bytes(2)
  return 20000 + ((b:byte(1) << 8 | b:byte(2)) % 40000)
end

function Server:conf()
  local b = { "server:", '    rundir: "' .. self.dir .. '"', "    listen: 127.0.0.1@" .. self.port,
    '    pidfile: "' .. self.dir .. '/knot.pid"', "database:", '    storage: "' .. self.dir .. '/db"',
    "log:", '  - target: "' .. self.dir .. '/knot.log"', "    any: info", "key:",
    "  - id: " .. self.tsig.name, "    algorithm: hmac-sha256", "    secret: " .. self.tsig.secret,
    "acl:", "  - id: update", "    key: " .. self.tsig.name, "    action: update",
    "template:", "  - id: default", '    storage: "' .. self.dir .. '/zones"', '    file: "%s.zone"',
    "    zonefile-sync: -1", "    zonefile-load: whole", "    journal-content: none",
    "  - id: dynamic", '    storage: "' .. self.dir .. '/zones"', '    file: "%s.zone"',
    "    zonefile-sync: 0", "    zonefile-load: difference-no-serial", "    journal-content: all",
    "    acl: update", "zone:" }
  local names = {}
  for z in pairs(self.zones) do names[#names + 1] = z end
  table.sort(names)
  for _, z in ipairs(names) do
    b[#b + 1] = "  - domain: " .. z
    if self.zones[z].dynamic then b[#b + 1] = "    template: dynamic" end
  end
  return table.concat(b, "\n") .. "\n"
end

function Server:knotc(...)
  local args = { shq(self.knotc_path), "-c", shq(self.dir .. "/knot.conf") }
  for _, a in ipairs { ... } do args[#args + 1] = shq(a) end
  local ok = os.execute(table.concat(args, " ") .. " >/dev/null 2>&1")
  return ok
end

-- Write the zone files that changed (never a dynamic zone once written).  -> names written.
function Server:write_zones(zones, first)
  local changed = {}
  for z, spec in pairs(zones) do
    local old = self.written[z]
    if not (old and spec.dynamic) then
      local serial = (self.serials[z] or 0) + 1
      local text = M.zone_file(z, spec, serial)
      local key = M.zone_file(z, spec, 0)        -- the content without the serial
      if first or key ~= old then
        assert(write(self.dir .. "/zones/" .. z .. ".zone", text))
        self.serials[z], self.written[z] = serial, key
        changed[#changed + 1] = z
      end
    end
  end
  return changed
end

-- The sentinel zone proves that the server on this port is ours and has loaded its zones.
local function sentinel(nonce)
  return { records = { { name = "nonce", type = "TXT", data = nonce } } }
end

function Server:ready(timeout)
  local dns = require "t2t.dns"
  local t2t = require "t2t"
  local r = dns.resolver { servers = self.address, timeout = 100, tries = 1 }
  local deadline = t2t.now() + (timeout or 3)
  repeat
    local txt = r:txt("nonce." .. self.sentinel)
    if txt and txt[1] == self.nonce then r:close() return true end
    t2t.sleep(0.02)
  until t2t.now() > deadline
  r:close()
  return false
end

-- start{zones, dir, port} -> server | nil, err.  Tries a few ports if one is taken.
function M.start(o)
  o = o or {}
  local knotd, knotc = M.available()
  if not knotd then return nil, knotc end
  local crypto = require "t2t.crypto"
  local dir = o.dir or os.tmpname()
  os.remove(dir)
  if not os.execute("mkdir -p " .. shq(dir .. "/zones") .. " " .. shq(dir .. "/db")) then
    return nil, "cannot create " .. dir
  end
  local nonce = crypto.hex_encode(crypto.random_bytes(8))
  local self = setmetatable({ dir = dir, knotd_path = knotd, knotc_path = knotc, nonce = nonce,
    sentinel = "t2t-sentinel.test", serials = {}, written = {}, zones = {},
    tsig = { name = "t2t-update", algorithm = "hmac-sha256",
             secret = crypto.base64_encode(crypto.random_bytes(32)) } }, Server)
  for z, spec in pairs(o.zones or {}) do self.zones[z:lower()] = spec end
  self.zones[self.sentinel] = sentinel(nonce)
  self:write_zones(self.zones, true)
  for _ = 1, 8 do
    self.port = o.port or random_port()
    self.address = "127.0.0.1:" .. self.port
    assert(write(dir .. "/knot.conf", self:conf()))
    os.remove(dir .. "/knot.pid")
    if os.execute(shq(knotd) .. " -d -c " .. shq(dir .. "/knot.conf") .. " >/dev/null 2>&1")
       and self:ready(3) then
      self.running = true
      return setmetatable(self, Server)
    end
    self:knotc("stop")
    if o.port then break end
  end
  local log = read(dir .. "/knot.log") or ""
  self:cleanup()
  return nil, "the DNS server (knotd) did not start: " .. (log:match("error: ([^\n]*)") or "see its log")
end

-- set_zones(zones): the zones to serve from now on (the sentinel stays).  -> true | nil, err
function Server:set_zones(zones)
  local new = {}
  for z, spec in pairs(zones) do new[z:lower()] = spec end
  new[self.sentinel] = self.zones[self.sentinel]
  local added = false
  for z in pairs(new) do if not self.zones[z] then added = true end end
  for z in pairs(self.zones) do if not new[z] then added = true; self.written[z] = nil end end
  self.zones = new
  local changed = self:write_zones(new, false)
  if added then
    assert(write(self.dir .. "/knot.conf", self:conf()))
    if not self:knotc("reload") then return nil, "knotc reload failed" end
  else
    for _, z in ipairs(changed) do self:knotc("zone-reload", z) end
  end
  return true
end

-- zone_text(name) -> the zone file of a dynamic zone as the server holds it now.
function Server:zone_text(zone)
  self:knotc("zone-flush", zone)
  return read(self.dir .. "/zones/" .. zone:lower() .. ".zone")
end

function Server:cleanup()
  os.execute("rm -rf " .. shq(self.dir))
end

-- stop(): the server stops and its directory goes.  Idempotent.
function Server:stop()
  if not self.running then return end
  self.running = false
  local pid = tonumber(read(self.dir .. "/knot.pid") or "")
  self:knotc("stop")
  if pid then        -- wait (briefly) until it is gone, so the port is free again
    for _ = 1, 200 do
      local st = read("/proc/" .. pid .. "/stat")
      if not st or st:match("^%d+ %b() Z") then break end   -- gone, or a zombie nobody reaps
      require("t2t").sleep(0.01)
    end
  end
  self:cleanup()
end
Server.__gc = Server.stop
Server.__close = Server.stop

return M
