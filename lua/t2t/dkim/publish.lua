-- t2t.dkim.publish: put the DKIM CNAMEs (t2t.dkim.records) where the domain's DNS is, through
-- the plan, ensure-style (read first, change only what differs), then wait until they resolve.
--
--   publish.azure(t, records, {subscription, resource_group, zone})    Azure DNS (ARM dnsZones)
--   publish.rfc2136(plan, records, {server, zone, key, tenant})         RFC 2136 update + TSIG
--   publish.wait(records, {resolver, timeout, interval, on_wait})       until both resolve
local M = {}

M.API = "2018-05-01"          -- Microsoft.Network/dnsZones

local ErrMT = { __tostring = function(e) return e.message end }
local function failure(code, fmt, ...)
  return nil, setmetatable({ code = code, message = string.format(fmt, ...) }, ErrMT)
end

local function norm(n) return (tostring(n or ""):lower():gsub("%.$", "")) end

local function enc(s) return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)) end

---------------------------------------------------------------------------------------------
-- Azure DNS

-- find_zone(azure, name, opts) -> {id, name, resource_group} | nil, err: the Azure DNS zone
-- that holds name (the longest zone name that is a suffix of it).
function M.find_zone(az, name, o)
  o = o or {}
  local sub = o.subscription or az.subscription
  if not sub then return failure("Usage", "publishing to Azure DNS needs a subscription (profile subscription = ... or --subscription)") end
  local path = "/subscriptions/" .. sub .. (o.resource_group and ("/resourceGroups/" .. enc(o.resource_group)) or "") ..
               "/providers/Microsoft.Network/dnszones"
  local list, err = az:arm("GET", path, nil, { api_version = M.API })
  if not list then return nil, err end
  local best
  name = norm(name)
  for _, z in ipairs(list.value or {}) do
    local zn = norm(z.name)
    if (o.zone == nil or norm(o.zone) == zn) and (name == zn or name:sub(-#zn - 1) == "." .. zn) then
      if not best or #zn > #best.name then
        best = { id = z.id, name = zn, resource_group = z.id:match("/[Rr]esource[Gg]roups/([^/]+)/") }
      end
    end
  end
  if not best then
    return failure("NoZone", "no Azure DNS zone in subscription %s holds %s (create the zone, or publish with --publish rfc2136|print)", sub, name)
  end
  return best
end

local function relative(name, zone)
  name, zone = norm(name), norm(zone)
  if name == zone then return "@" end
  return name:sub(1, #name - #zone - 1)
end

-- One CNAME record set in Azure DNS, ensure-style; a TXT record set in its place (the
-- documented mistake) is deleted first, through the plan too.
local function azure_one(t, z, r)
  local az = t.azure
  local rel = relative(r.name, z.name)
  local base = z.id .. "/"
  local cur, err = az:arm("GET", base .. "CNAME/" .. enc(rel), nil, { api_version = M.API })
  if not cur and not (err and err.status == 404) then return nil, err end
  local have = cur and cur.properties and cur.properties.CNAMERecord and norm(cur.properties.CNAMERecord.cname)
  if have == norm(r.data) and cur.properties.TTL == r.ttl then return "unchanged" end
  local txt = az:arm("GET", base .. "TXT/" .. enc(rel), nil, { api_version = M.API })
  if txt and txt.properties then
    local _, derr = t.plan:change { kind = "delete", target = "TXT " .. r.name .. " (Azure DNS zone " .. z.name .. ")",
      tenant = t.name, operation = "delete_txt", note = "a TXT record where the DKIM CNAME belongs (Microsoft's documented mistake)",
      apply = function() return az:arm("DELETE", base .. "TXT/" .. enc(rel), nil, { api_version = M.API }) end }
    if derr and derr ~= "planned" then return nil, derr end
  end
  local _, perr = t.plan:change {
    kind = have and "update" or "create", target = "CNAME " .. r.name .. " (Azure DNS zone " .. z.name .. ")",
    tenant = t.name, operation = "publish_cname", before = have and { cname = have } or nil,
    after = { cname = norm(r.data), ttl = r.ttl },
    apply = function()
      return az:arm("PUT", base .. "CNAME/" .. enc(rel), { properties = { TTL = r.ttl, CNAMERecord = { cname = norm(r.data) } } },
                    { api_version = M.API })
    end }
  if perr and perr ~= "planned" then return nil, perr end
  return "changed"
end

-- azure(t, records, {subscription, resource_group, zone}) -> {changed = n} | nil, err
function M.azure(t, records, o)
  if not t.azure then return failure("Usage", "tenant %s has no Azure client (a profile with a subscription)", tostring(t.name)) end
  local out = { changed = 0 }
  for _, r in ipairs(records) do
    local z, err = M.find_zone(t.azure, r.name, o)
    if not z then return nil, err end
    local res, perr = azure_one(t, z, r)
    if not res then return nil, perr end
    if res == "changed" then out.changed = out.changed + 1 end
    out.zone = z.name
  end
  return out
end

---------------------------------------------------------------------------------------------
-- RFC 2136

-- rfc2136(plan, records, {server, zone, key, tenant, resolver}) -> {changed = n} | nil, err.
-- Reads each name at the zone's server first; replaces the CNAME (and a TXT in its place).
function M.rfc2136(plan, records, o)
  local dns = require "t2t.dns"
  if not (o.server and o.zone and o.key) then
    return failure("Usage", "RFC 2136 publication needs --dns-server HOST[:PORT], --zone and --tsig-key")
  end
  local r0, rerr = dns.resolver { servers = o.server, timeout = 2000, tries = 2 }
  if not r0 then return nil, rerr end
  local out = { changed = 0 }
  for _, r in ipairs(records) do
    local cur = r0:query(r.name, "CNAME")
    local have = cur and cur.records[1] and norm(cur.records[1].target)
    if not (have == norm(r.data) and cur.records[1].ttl == r.ttl) then
      local _, err = plan:change {
        kind = have and "update" or "create", target = "CNAME " .. r.name .. " (zone " .. o.zone .. " at " .. o.server .. ")",
        tenant = o.tenant, operation = "publish_cname", before = have and { cname = have } or nil,
        after = { cname = norm(r.data), ttl = r.ttl },
        apply = function()
          return dns.update { server = o.server, zone = o.zone, key = o.key,
            delete = { { name = r.name, type = "CNAME" }, { name = r.name, type = "TXT" } },
            add = { { name = r.name, type = "CNAME", ttl = r.ttl, data = norm(r.data) .. "." } } }
        end }
      if err and err ~= "planned" then r0:close() return nil, err end
      out.changed = out.changed + 1
    end
  end
  r0:close()
  return out
end

---------------------------------------------------------------------------------------------
-- Waiting

-- resolved(resolver, records) -> true | false, why
function M.resolved(resolver, records)
  for _, r in ipairs(records) do
    local q = resolver:query(r.name, "CNAME")
    local have = q and q.records[1] and norm(q.records[1].target)
    if have ~= norm(r.data) then
      return false, r.name .. (have and (" points to " .. have) or " does not resolve yet")
    end
  end
  return true
end

-- wait(records, {resolver, timeout = 300, interval = 5, on_wait}) -> true | nil, err
function M.wait(records, o)
  o = o or {}
  local t2t = require "t2t"
  local resolver = o.resolver or require("t2t.dns").default()
  local deadline = t2t.now() + (o.timeout or 300)
  while true do
    local ok, why = M.resolved(resolver, records)
    if ok then return true end
    if t2t.now() >= deadline then
      return failure("Timeout", "the CNAMEs do not resolve yet (%s); DNS changes can take up to the old " ..
        "record's TTL to show: run again later", why)
    end
    if o.on_wait then o.on_wait(why) end
    t2t.sleep(o.interval or 5)
  end
end

return M
