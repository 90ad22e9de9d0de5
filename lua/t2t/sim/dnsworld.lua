-- t2t.sim.dnsworld: the simulated Internet's DNS for the simulator's tenants, served by a real
-- DNS server (t2t.sim.dnsserver, Knot) when it runs — docs/simulator.md, docs/dkim.md.
--
-- Zones (rebuilt by sync() after every change that touches them):
--   Microsoft's side: <tenant>.onmicrosoft.com (MX, SPF, the legacy-format DKIM key targets, the
--   initial domain's own key), dkim.mail.microsoft (new-format targets), <tenant>.mail.onmicrosoft.com,
--   protection.outlook.com (spf/spfd includes, MX hosts);
--   the customers' side: every Azure DNS zone in the state (t2t.sim.dnszones), and for each other
--   accepted domain an "external" zone at the customer's own DNS host: seeded once, then changed
--   only by RFC 2136 updates (TSIG key in sim.dns.tsig), captured into the state at save.
-- The seed gives the pair a varied posture: contoso.com signed and strict, contoso.net with the
-- documented CNAME mistakes, contoso-eu.com with two SPF records, fabrikam.com in Azure DNS
-- without DKIM (what dkim-setup fixes), fabrikam.co.uk over the SPF lookup limit.
local dnszones = require "t2t.sim.dnszones"

local M = {}

local EXO_SPF = "v=spf1 include:spf.protection.outlook.com -all"
-- spf.protection.outlook.com as observed: ip4/ip6 terms plus one include (dkim.md §2.1)
local MS_SPF = "v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 ip4:52.100.0.0/15 ip4:52.102.0.0/16 " ..
  "ip4:52.103.0.0/16 ip4:104.47.0.0/17 ip6:2a01:111:f400::/48 ip6:2a01:111:f403::/49 " ..
  "include:spfd.protection.outlook.com -all"
local MS_SPFD = "v=spf1 ip4:51.4.72.0/24 ip4:51.5.72.0/24 ip4:51.5.80.0/27 ip4:20.47.149.138/32 " ..
  "ip4:51.4.80.0/27 ip6:2a01:4180:4051:0800::/64 ip6:2a01:4180:4050:0800::/64 -all"

local function lower(s) return s:lower() end
local function dashed(d) return (d:lower():gsub("%.", "-")) end
local function mx(d) return "0 " .. dashed(d) .. ".mail.protection.outlook.com." end

local function is_microsoft(d)
  d = d:lower()
  return d:sub(-16) == ".onmicrosoft.com" or d == "onmicrosoft.com"
end

---------------------------------------------------------------------------------------------
-- The seeded posture

local function dkim_cnames(c, domain, mistakes)
  local r = {}
  for n = 1, 2 do
    local host = "selector" .. n .. "._domainkey"
    local target = c["Selector" .. n .. "CNAME"] .. "."
    local m = mistakes and mistakes[n]
    if m == "txt" then r[#r + 1] = { name = host, type = "TXT", data = "v=DKIM1; k=rsa; p=" .. c._keys[n].p }
    elseif m == "doubled" then r[#r + 1] = { name = host .. "." .. domain .. "." .. domain .. ".", type = "CNAME", data = target }
    else r[#r + 1] = { name = host, type = "CNAME", data = target, ttl = n == 2 and 300 or 3600 } end
  end
  return r
end

local function base(domain, spf, dmarc)
  local r = { { name = "@", type = "MX", data = mx(domain) } }
  for _, s in ipairs(type(spf) == "table" and spf or { spf }) do r[#r + 1] = { name = "@", type = "TXT", data = s } end
  if dmarc then r[#r + 1] = { name = "_dmarc", type = "TXT", data = dmarc } end
  return r
end

local function vendor_includes(n)
  local b = { "v=spf1 include:spf.protection.outlook.com" }
  for i = 1, n do b[#b + 1] = "include:_spf" .. i .. ".mailvendor.example" end
  return table.concat(b, " ") .. " -all"
end

-- The posture of the seeded pair's custom domains: records of external zones, and the
-- Azure DNS zone of the target.  DKIM configs for contoso are made here (they need keys).
local function seed(sim)
  local st = sim.state
  local dk = require "t2t.sim.exo.dkim"
  local src = st.pair and st.tenants[st.pair.source]
  local tgt = st.pair and st.tenants[st.pair.target]
  local ext = {}
  local now = sim:now()
  for _, t in pairs(st.tenants) do
    for _, d in ipairs(t.exo.accepted_domains) do
      local name = lower(d.DomainName)
      if not is_microsoft(name) then ext[name] = { records = base(name, EXO_SPF) } end
    end
  end
  if src and ext["contoso.com"] then
    local c = dk.new_config(sim, src, "contoso.com", { KeySize = 1024, now = now - 86400 * 400 })
    c.Enabled = true
    ext["contoso.com"].records = base("contoso.com", EXO_SPF,
      "v=DMARC1; p=reject; rua=mailto:dmarc@contoso.com; ruf=mailto:dmarc-forensic@contoso.com; fo=1")
    for _, r in ipairs(dkim_cnames(c, "contoso.com")) do table.insert(ext["contoso.com"].records, r) end
  end
  if src and ext["contoso.net"] then
    local c = dk.new_config(sim, src, "contoso.net", { KeySize = 1024, now = now - 86400 * 30 })
    ext["contoso.net"].records = base("contoso.net", "v=spf1 include:spf.protection.outlook.com ~all",
      "v=DMARC1; p=none; pct=50; rua=mailto:dmarc@contoso.net")
    for _, r in ipairs(dkim_cnames(c, "contoso.net", { "txt", "doubled" })) do table.insert(ext["contoso.net"].records, r) end
  end
  if ext["contoso-eu.com"] then
    ext["contoso-eu.com"].records = base("contoso-eu.com", { EXO_SPF, "v=spf1 include:_spf.mailvendor.example ~all" })
  end
  if ext["fabrikam.co.uk"] then ext["fabrikam.co.uk"].records = base("fabrikam.co.uk", vendor_includes(10)) end
  if tgt and ext["fabrikam.com"] then          -- fabrikam.com lives in Azure DNS
    local sub_id = next(tgt.azure.subscriptions)
    local sub = sub_id and tgt.azure.subscriptions[sub_id]
    if sub then
      sub.resource_groups = sub.resource_groups or {}
      sub.resource_groups.dns = sub.resource_groups.dns or { location = "westeurope", tags = {}, vaults = {} }
      local z = dnszones.new_zone(sim, sub.resource_groups.dns, "fabrikam.com")
      z.sets.MX = { ["@"] = { TTL = 3600, etag = sim.rng:guid(), records = { { preference = 0, exchange = "fabrikam-com.mail.protection.outlook.com" } } } }
      z.sets.TXT = { ["@"] = { TTL = 3600, etag = sim.rng:guid(), records = { { value = { EXO_SPF } } } },
                     _dmarc = { TTL = 3600, etag = sim.rng:guid(), records = { { value = { "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@fabrikam.com" } } } } }
      ext["fabrikam.com"] = nil
    end
  end
  st.dns = { external = ext, seeded = true }
end

---------------------------------------------------------------------------------------------
-- Zones

local function target_zone(target)
  target = target:lower()
  local rel, z = target:match("^(.-)%.([^.]+%.onmicrosoft%.com)$")
  if z then return z, rel end
  rel = target:match("^(.-)%.dkim%.mail%.microsoft$")
  if rel then return "dkim.mail.microsoft", rel end
end

local function add(zones, zone, rec)
  zones[zone] = zones[zone] or { records = {} }
  table.insert(zones[zone].records, rec)
end

local function microsoft_zones(sim, zones)
  local dk = require "t2t.sim.exo.dkim"
  add(zones, "protection.outlook.com", { name = "spf", type = "TXT", data = MS_SPF })
  add(zones, "protection.outlook.com", { name = "spfd", type = "TXT", data = MS_SPFD })
  zones["dkim.mail.microsoft"] = zones["dkim.mail.microsoft"] or { records = {} }
  local n = 0
  for _, t in pairs(sim.state.tenants) do
    local init = t.initial_domain:lower()
    add(zones, init, { name = "@", type = "MX", data = mx(init) })
    add(zones, init, { name = "@", type = "TXT", data = EXO_SPF })
    add(zones, init, { name = "selector1._domainkey", type = "TXT", data = "v=DKIM1; k=rsa; p=" .. dk.initial_key(sim, t).p })
    add(zones, t.name:lower() .. ".mail.onmicrosoft.com", { name = "@", type = "MX", data = mx(t.name .. ".mail.onmicrosoft.com") })
    for _, d in ipairs(t.exo.accepted_domains) do
      n = n + 1
      add(zones, "protection.outlook.com", { name = dashed(d.DomainName) .. ".mail", type = "A",
                                             data = string.format("52.101.%d.%d", n // 250, n % 250 + 1) })
    end
    for _, c in pairs(t.exo.dkim) do
      for k = 1, 2 do
        local z, rel = target_zone(c["Selector" .. k .. "CNAME"])
        if z and c._keys and c._keys[k] then
          add(zones, z, { name = rel, type = "TXT", data = "v=DKIM1; k=rsa; p=" .. c._keys[k].p })
        end
      end
    end
  end
end

-- zones(sim) -> every zone spec of the world (dnsserver.start/set_zones shape).
function M.zones(sim)
  local zones = {}
  microsoft_zones(sim, zones)
  local mv = { records = { { name = "_spf", type = "TXT", data = "v=spf1 ip4:198.51.100.0/24 -all" } } }
  for i = 1, 10 do mv.records[#mv.records + 1] = { name = "_spf" .. i, type = "TXT", data = "v=spf1 ip4:198.51.100." .. i .. " -all" } end
  zones["mailvendor.example"] = mv
  local dns = sim.state.dns or {}
  for name, spec in pairs(dns.external or {}) do
    zones[name] = { dynamic = true, records = spec.records, text = dns.zone_text and dns.zone_text[name] }
  end
  for name, z in pairs(dnszones.all(sim.state)) do zones[name] = dnszones.zone_spec(z) end
  -- the parents (com, co.uk, uk, onmicrosoft.com, ...) as empty zones, so that a name nobody
  -- publishes gets NXDOMAIN, as from the Internet's DNS, rather than REFUSED
  local names = {}
  for name in pairs(zones) do names[#names + 1] = name end
  for _, name in ipairs(names) do
    for parent in name:gmatch("%.(.+)$") do
      local p = parent
      while p do
        zones[p] = zones[p] or { records = {} }
        p = p:match("^[^.]+%.(.+)$")
      end
    end
  end
  return zones
end

---------------------------------------------------------------------------------------------
-- The server

-- start(sim) -> true | nil, why: seed (once), start Knot, serve the zones.  sim.dns then holds
-- {server, address, tsig}.
function M.start(sim)
  local ds = require "t2t.sim.dnsserver"
  if not ds.available() then return nil, select(2, ds.available()) end
  if not (sim.state.dns and sim.state.dns.seeded) then seed(sim) end
  local srv, err = ds.start { zones = M.zones(sim) }
  if not srv then return nil, err end
  sim.dns = { server = srv, address = srv.address, tsig = srv.tsig }
  return true
end

-- sync(sim): serve what the state says now (a no-op without a server).
function M.sync(sim)
  local d = sim.dns
  if not (d and d.server) then return end
  local ok, err = d.server:set_zones(M.zones(sim))
  if not ok and sim.log then sim:log { service = "dns", error = tostring(err) } end
end

-- before_save(sim): keep the external zones as the server holds them (RFC 2136 changes).
function M.before_save(sim)
  local d, st = sim.dns, sim.state.dns
  if not (d and d.server and st) then return end
  st.zone_text = st.zone_text or {}
  for name in pairs(st.external or {}) do st.zone_text[name] = d.server:zone_text(name) or st.zone_text[name] end
end

function M.stop(sim)
  if sim.dns and sim.dns.server then sim.dns.server:stop() end
  sim.dns = nil
end

-- cname(sim, t, host) -> the CNAME target at host | nil: asked of the DNS server when it runs,
-- else read from the state (Azure DNS zones, external zones, tenant.exo.dns for tests).
function M.cname(sim, t, host)
  host = host:lower()
  if sim.dns and sim.dns.server then
    sim.dns.resolver = sim.dns.resolver or require("t2t.dns").resolver { servers = sim.dns.address, timeout = 500, tries = 2 }
    local r = sim.dns.resolver:query(host, "CNAME")
    return r and r.records[1] and r.records[1].target or nil
  end
  local v = t.exo.dns and t.exo.dns[host]
  if v then return v end
  local specs = {}
  for name, spec in pairs((sim.state.dns or {}).external or {}) do specs[name] = spec end
  for name, z in pairs(dnszones.all(sim.state)) do specs[name] = dnszones.zone_spec(z) end
  for name, spec in pairs(specs) do
    if host:sub(-#name - 1) == "." .. name then
      local rel = host:sub(1, #host - #name - 1)
      for _, r in ipairs(spec.records or {}) do
        if r.type == "CNAME" and r.name:lower() == rel then return r.data end
      end
    end
  end
end

return M
