-- t2t.sim.dnszones: Azure DNS (ARM Microsoft.Network/dnsZones, api-version 2018-05-01) in the
-- simulated ARM: zones in a resource group and their record sets (A, AAAA, CNAME, MX, NS, TXT).
-- Routed from t2t.sim.arm (route() below gets arm's helpers); every change is pushed to the
-- simulator's DNS server by t2t.sim.dnsworld, so what an admin publishes here resolves.
--
-- State: sub.resource_groups[rg].dns_zones[zone] = { name, etag, tags,
--          sets = { [TYPE] = { [relative name] = { TTL, etag, records = {...} } } } }
-- Errors of the record-set API come in the shape the DNS provider answers with (top-level
-- {code, message, details}, as seen from a real 409 Conflict); zone-level ones are ARM's.
local M = {}

local TYPES = { A = "ARecords", AAAA = "AAAARecords", CNAME = "CNAMERecord", MX = "MXRecords",
                NS = "NSRecords", TXT = "TXTRecords", SOA = "SOARecord", PTR = "PTRRecords" }
local NAME_SERVERS = { "ns1-01.azure-dns.com.", "ns2-01.azure-dns.net.", "ns3-01.azure-dns.org.",
                       "ns4-01.azure-dns.info." }

local DnsError = {}
local function dns_fail(status, code, message, detail)
  error(setmetatable({ status = status, code = code, message = message, detail = detail }, DnsError), 0)
end

local function etag(sim) return sim.rng:guid() end

local function zone_id(sub_id, rg, zone)
  return "/subscriptions/" .. sub_id .. "/resourceGroups/" .. rg .. "/providers/Microsoft.Network/dnszones/" .. zone
end

local function count_sets(z)
  local n = 0
  for _, sets in pairs(z.sets) do for _ in pairs(sets) do n = n + 1 end end
  return n
end

local function zone_body(sub_id, rg, z)
  return { id = zone_id(sub_id, rg, z.name), name = z.name, type = "Microsoft.Network/dnszones",
           etag = z.etag, location = "global", tags = z.tags or {},
           properties = { maxNumberOfRecordSets = 10000, maxNumberOfRecordsPerRecordSet = 20,
                          numberOfRecordSets = count_sets(z), nameServers = NAME_SERVERS,
                          zoneType = "Public" } }
end

local function set_body(sub_id, rg, z, typ, rel, s)
  local props = { TTL = s.TTL, fqdn = (rel == "@" and z.name or (rel .. "." .. z.name)) .. ".",
                  provisioningState = "Succeeded", targetResource = {} }
  props[TYPES[typ]] = s.records
  return { id = zone_id(sub_id, rg, z.name) .. "/" .. typ .. "/" .. rel, name = rel,
           type = "Microsoft.Network/dnszones/" .. typ, etag = s.etag, properties = props }
end

-- new_zone(sim, rg_table, name) -> zone: with the SOA and NS sets Azure creates.
function M.new_zone(sim, rg, name, tags)
  rg.dns_zones = rg.dns_zones or {}
  local z = { name = name:lower(), etag = etag(sim), tags = tags, sets = {
    SOA = { ["@"] = { TTL = 3600, etag = etag(sim), records = { host = NAME_SERVERS[1],
      email = "azuredns-hostmaster.microsoft.com", serialNumber = 1, refreshTime = 3600,
      retryTime = 300, expireTime = 2419200, minimumTTL = 300 } } },
    NS = { ["@"] = { TTL = 172800, etag = etag(sim), records = {} } } } }
  for i, ns in ipairs(NAME_SERVERS) do z.sets.NS["@"].records[i] = { nsdname = ns } end
  rg.dns_zones[z.name] = z
  return z
end

local function find_zone(rg, name)
  return rg and rg.dns_zones and rg.dns_zones[name:lower()]
end

-- Validate the records of a PUT body for typ; -> records table.
local function records_of(typ, props)
  local key = TYPES[typ]
  local v = props[key] or props[key:sub(1, 1):lower() .. key:sub(2)]
  if typ == "CNAME" then
    if type(v) ~= "table" or type(v.cname) ~= "string" or v.cname == "" then
      dns_fail(400, "BadRequest", "The CNAME record set must have a CNAMERecord with a cname.")
    end
    return { cname = v.cname }
  end
  if type(v) ~= "table" or #v == 0 then
    dns_fail(400, "BadRequest", "The record set must contain at least one " .. key .. " record.")
  end
  for _, r in ipairs(v) do
    local ok = (typ == "A" and type(r.ipv4Address) == "string") or (typ == "AAAA" and type(r.ipv6Address) == "string")
      or (typ == "MX" and tonumber(r.preference) and type(r.exchange) == "string")
      or (typ == "TXT" and type(r.value) == "table" and #r.value > 0)
      or (typ == "NS" and type(r.nsdname) == "string") or (typ == "PTR" and type(r.ptrdname) == "string")
    if not ok then dns_fail(400, "BadRequest", "A record in " .. key .. " is not valid for a " .. typ .. " record set.") end
    if typ == "TXT" then
      for _, s in ipairs(r.value) do
        if #s > 1024 then dns_fail(400, "BadRequest", "A TXT record value string is longer than 1024 characters.") end
      end
    end
  end
  return v
end

local function header(req, name)
  for k, v in pairs(req.headers or {}) do if k:lower() == name then return v end end
end

local function put_set(ctx, H, sub_id, rg_name, z, typ, rel)
  local props = type(ctx.json) == "table" and ctx.json.properties
  if type(props) ~= "table" then dns_fail(400, "BadRequest", "The request body must have properties.") end
  local ttl = math.tointeger(tonumber(props.TTL or props.ttl))
  if not ttl or ttl < 0 or ttl > 2147483647 then dns_fail(400, "BadRequest", "The TTL of the record set is missing or not valid.") end
  local records = records_of(typ, props)
  z.sets[typ] = z.sets[typ] or {}
  local existing = z.sets[typ][rel]
  if header(ctx.req, "if-none-match") == "*" and existing then
    dns_fail(412, "PreconditionFailed", "The Record set " .. rel .. " exists already and hence cannot be created again.")
  end
  local im = header(ctx.req, "if-match")
  if im and im ~= "*" and (not existing or existing.etag ~= im) then
    dns_fail(412, "PreconditionFailed", "The condition '" .. im .. "' in the If-Match header was not satisfied.")
  end
  for other, sets in pairs(z.sets) do     -- a CNAME stands alone at its name (RFC 1034 §3.6.2)
    if other ~= typ and sets[rel] and other ~= "SOA" and other ~= "NS" and (typ == "CNAME" or other == "CNAME") then
      local msg = typ == "CNAME" and "The record could not be created because a record with the same name already exists in this zone."
        or "The record could not be created because a CNAME record with the same name already exists in this zone."
      dns_fail(409, "Conflict", msg, "CannotCreateRecordDueToCNameNamingRestriction")
    end
  end
  local s = { TTL = ttl, etag = etag(ctx.sim), records = records }
  z.sets[typ][rel] = s
  require("t2t.sim.dnsworld").sync(ctx.sim)
  return H.response(ctx, existing and 200 or 201, set_body(sub_id, rg_name, z, typ, rel, s))
end

local function record_set(ctx, H, sub_id, rg_name, z, typ, rel)
  if not TYPES[typ] then dns_fail(400, "BadRequest", "The record type '" .. typ .. "' is not supported.") end
  rel = rel:lower()
  local s = z.sets[typ] and z.sets[typ][rel]
  if ctx.method == "GET" then
    if not s then
      dns_fail(404, "NotFound", string.format("The resource record '%s' does not exist in resource group " ..
        "'%s' of subscription '%s'.", rel, rg_name, sub_id))
    end
    return H.response(ctx, 200, set_body(sub_id, rg_name, z, typ, rel, s))
  elseif ctx.method == "PUT" or ctx.method == "PATCH" then
    if typ == "SOA" and rel ~= "@" then dns_fail(400, "BadRequest", "SOA record sets exist only at the apex.") end
    return put_set(ctx, H, sub_id, rg_name, z, typ, rel)
  elseif ctx.method == "DELETE" then
    if typ == "SOA" or (typ == "NS" and rel == "@") then
      dns_fail(400, "BadRequest", "The apex SOA and NS record sets cannot be deleted.")
    end
    if not s then return H.response(ctx, 204) end
    z.sets[typ][rel] = nil
    require("t2t.sim.dnsworld").sync(ctx.sim)
    return H.response(ctx, 200)
  end
  H.fail(405, "MethodNotAllowed", "The requested method is not allowed.")
end

local function list_sets(ctx, H, sub_id, rg_name, z, only)
  local out = {}
  for typ, sets in pairs(z.sets) do
    if not only or typ == only then
      for rel, s in pairs(sets) do out[#out + 1] = set_body(sub_id, rg_name, z, typ, rel, s) end
    end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return H.response(ctx, 200, { value = H.array(out) })
end

local function zone(ctx, H, sub_id, sub, rg_name, name, tail)
  local rg = H.rg_find(sub, rg_name)
  local scope = zone_id(sub_id, rg_name, name)
  if not rg then H.fail(404, "ResourceGroupNotFound", "Resource group '" .. rg_name .. "' could not be found.") end
  local z = find_zone(rg, name)
  local write = ctx.method ~= "GET"
  H.authorize(ctx, sub, scope, write and H.WRITE or H.READ, "Microsoft.Network/dnszones/" .. (write and "write" or "read"))
  if tail == "" then
    if ctx.method == "PUT" then
      local body = ctx.json or {}
      if body.location and tostring(body.location):lower() ~= "global" then
        H.fail(400, "LocationNotAvailableForResourceType", "The provided location '" .. tostring(body.location) ..
          "' is not available for resource type 'Microsoft.Network/dnszones'. List of available regions for the resource type is 'global'.")
      end
      if not name:match("^[%w%-_]+%.[%w%-_%.]+$") then H.fail(400, "BadRequest", "The zone name '" .. name .. "' is not valid.") end
      local created = not z
      z = z or M.new_zone(ctx.sim, rg, name, body.tags)
      if body.tags then z.tags = body.tags end
      require("t2t.sim.dnsworld").sync(ctx.sim)
      return H.response(ctx, created and 201 or 200, zone_body(sub_id, rg_name, z))
    end
    if not z then
      H.fail(404, "ResourceNotFound", "The Resource 'Microsoft.Network/dnszones/" .. name .. "' under resource group '"
        .. rg_name .. "' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")
    end
    if ctx.method == "GET" then return H.response(ctx, 200, zone_body(sub_id, rg_name, z)) end
    if ctx.method == "DELETE" then
      rg.dns_zones[z.name] = nil
      require("t2t.sim.dnsworld").sync(ctx.sim)
      return H.response(ctx, 200)
    end
    H.fail(405, "MethodNotAllowed", "The requested method is not allowed.")
  end
  if not z then H.fail(404, "ParentResourceNotFound", "Can not perform requested operation on nested resource. Parent resource '" .. name .. "' not found.") end
  if tail:lower() == "recordsets" or tail:lower() == "all" then return list_sets(ctx, H, sub_id, rg_name, z) end
  local typ, rel = tail:match("^(%a+)/?(.*)$")
  typ = typ and typ:upper()
  if typ and rel == "" and ctx.method == "GET" then return list_sets(ctx, H, sub_id, rg_name, z, typ) end
  if not typ or rel == "" then H.fail(404, "NotFound", "No HTTP resource was found that matches the request URI.") end
  return record_set(ctx, H, sub_id, rg_name, z, typ, rel)
end

local function list_zones(ctx, H, sub_id, sub, only_rg)
  H.authorize(ctx, sub, "/subscriptions/" .. sub_id, H.READ, "Microsoft.Network/dnszones/read")
  local out = {}
  for rg_name, rg in pairs(sub.resource_groups) do
    if not only_rg or rg_name:lower() == only_rg:lower() then
      for _, z in pairs(rg.dns_zones or {}) do out[#out + 1] = zone_body(sub_id, rg_name, z) end
    end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return H.response(ctx, 200, { value = H.array(out) })
end

-- route(ctx, sub_id, rest, H) -> response | nil (not a DNS path).  H: arm.lua's helpers.
function M.route(ctx, sub_id, rest, H)
  local lrest = rest:lower()
  local ok, res = pcall(function()
    if lrest == "/providers/microsoft.network/dnszones" and ctx.method == "GET" then
      return list_zones(ctx, H, sub_id, H.subscription(ctx, sub_id))
    end
    local rg, rtail = rest:match("^/[Rr]esource[Gg]roups/([^/]+)/providers/[Mm]icrosoft%.[Nn]etwork/[Dd][Nn][Ss][Zz]ones(.*)$")
    if not rg then return nil end
    local sub = H.subscription(ctx, sub_id)
    if rtail == "" then
      if ctx.method ~= "GET" then H.fail(405, "MethodNotAllowed", "The requested method is not allowed.") end
      return list_zones(ctx, H, sub_id, sub, rg)
    end
    local name, tail = rtail:match("^/([^/]+)/?(.*)$")
    return zone(ctx, H, sub_id, sub, rg, name, tail)
  end)
  if ok then return res end
  if getmetatable(res) ~= DnsError then error(res, 0) end
  local body = { code = res.code, message = res.message }
  if res.detail then body.details = { { code = res.detail, message = res.message } } end
  return H.response(ctx, res.status, body)
end

---------------------------------------------------------------------------------------------
-- For t2t.sim.dnsworld: every Azure DNS zone in the state, as dnsserver zone specs.

local function strip(s) return (s:gsub("%.$", "")) end

function M.zone_spec(z)
  local recs = {}
  for typ, sets in pairs(z.sets) do
    for rel, s in pairs(sets) do
      local function add(data) recs[#recs + 1] = { name = rel, type = typ, ttl = s.TTL, data = data } end
      if typ == "CNAME" then add(strip(s.records.cname) .. ".")
      elseif typ == "A" then for _, r in ipairs(s.records) do add(r.ipv4Address) end
      elseif typ == "AAAA" then for _, r in ipairs(s.records) do add(r.ipv6Address) end
      elseif typ == "MX" then for _, r in ipairs(s.records) do add(string.format("%d %s.", r.preference, strip(r.exchange))) end
      elseif typ == "TXT" then for _, r in ipairs(s.records) do add(table.concat(r.value)) end
      elseif typ == "PTR" then for _, r in ipairs(s.records) do add(strip(r.ptrdname) .. ".") end
      end
    end
  end
  table.sort(recs, function(a, b) return a.name .. a.type .. tostring(a.data) < b.name .. b.type .. tostring(b.data) end)
  return { records = recs }
end

-- all(state) -> { [zone name] = zone } over every tenant's subscriptions.
function M.all(state)
  local out = {}
  require("t2t.sim.arm").each_rg(state, function(_, _, _, rg)
    for name, z in pairs(rg.dns_zones or {}) do out[name] = z end
  end)
  return out
end

return M
