-- dkim-setup: DKIM signing for a tenant's domains in Exchange Online — the config, its two
-- CNAMEs published where the domain's DNS is, signing enabled once they resolve, rotation.
local dkim = require "t2t.dkim"
local publish = require "t2t.dkim.publish"
local rb = require "t2t.dkim.runbooks"
local session = require "t2t.tenant.session"

local PUBLISH = { print = true, ["azure-dns"] = true, rfc2136 = true }

-- The RFC 2136 target: --dns-server/--zone/--tsig-key, or the simulator's own DNS server.
local function rfc2136_opts(ctx, p, domain, sim_dns)
  local key = p.tsig_key and require("t2t.dns.update").parse_key(p.tsig_key)
  if p.tsig_key and not key then ctx:fail("--tsig-key: not a TSIG key (a BIND/Knot key file, or [hmac-sha256:]NAME:SECRET)") end
  local o = { server = p.dns_server, zone = p.zone or domain, key = key }
  if sim_dns then
    o.server = o.server or sim_dns.address
    o.key = o.key or sim_dns.tsig
  end
  if not (o.server and o.key) then ctx:fail("--publish rfc2136 needs --dns-server HOST[:PORT] and --tsig-key") end
  return o
end

local function one(ctx, p, t, domain, resolver, sim_dns)
  local row, err = dkim.ensure(t, domain, { key_size = p.key_size, resolver = resolver })
  if not row then return nil, err end
  if row.planned then return { domain = domain, planned = true } end
  local records = dkim.records(row)
  ctx:say("\n%s: DKIM %s, status %s, %s format (CNAME targets read from Exchange Online)", domain,
          row.enabled and "on" or "off", tostring(row.status), tostring(row.format))
  ctx:say("%s", dkim.zone_text(records):gsub("\n$", ""))
  if row.key_size_note then ctx:say("note: %s", row.key_size_note) end
  local pub
  if p.publish == "azure-dns" then
    pub, err = publish.azure(t, records, { subscription = p.subscription, resource_group = p.resource_group, zone = p.zone })
  elseif p.publish == "rfc2136" then
    pub, err = publish.rfc2136(t.plan, records, rfc2136_opts(ctx, p, domain, sim_dns))
  end
  if err then return nil, err end
  if pub then ctx:say("published: %d record(s) changed%s", pub.changed, pub.zone and (" in zone " .. pub.zone) or "") end
  if p.enable and not row.enabled and not ctx.plan.dry_run then
    local ok, werr = publish.wait(records, { resolver = resolver, timeout = p.wait, interval = 2,
      on_wait = function(why) ctx:say("  waiting for DNS: %s", why) end })
    if not ok then return nil, werr end
    row, err = dkim.ensure(t, domain, { enable = true, resolver = resolver })
    if not row then return nil, err end
    ctx:say("DKIM signing enabled for %s", domain)
  elseif p.enable and ctx.plan.dry_run and not row.enabled then
    ctx:say("(--plan: signing would be enabled once both CNAMEs resolve)")
  end
  if p.rotate then
    row, err = dkim.rotate(t, domain, { key_size = p.key_size })
    if not row then return nil, err end
    if row.rotate_on then
      ctx:say("rotation started: %s signs from %s (96 h); keep both CNAMEs published", tostring(row.next),
              os.date("!%Y-%m-%d %H:%M UTC", row.rotate_on))
    end
  end
  row.config = nil
  row.records = records
  return row
end

return runbook {
  name = "dkim-setup",
  description = "Set up DKIM signing in Exchange Online for domains: config, CNAMEs, enable, rotate.\n\n" ..
    "Creates the DKIM signing config when missing (New-DkimSigningConfig; Exchange Online makes the keys),\n" ..
    "prints the two CNAMEs to publish in zone-file form -- their targets are read from the service\n" ..
    "(Selector1CNAME/Selector2CNAME, legacy or May-2025 format), never built -- and publishes them when asked:\n" ..
    "--publish azure-dns (ARM Microsoft.Network/dnsZones) or rfc2136 (dynamic update with TSIG). With\n" ..
    "--enable it waits until both resolve, then turns signing on. --rotate starts a key rotation (the other\n" ..
    "selector gets a new key that signs 96 hours later; 2048 bits on both selectors takes two rotations).\n" ..
    "Safe to re-run: it reads first and changes only what differs; --plan shows the changes.",
  -- the tenant's DKIM configs (docs/roles.md); Azure DNS publishing is Azure RBAC, not checked
  needs = { exchange = { "Transport Hygiene" },
            azure = { "--publish azure-dns: DNS Zone Contributor on the zone (or its resource group)" } },
  params = {
    { name = "tenant", type = "string", help = "profile of the tenant (default: --profile; the target under --sim)" },
    { name = "domain", type = "list", required = true, help = "domains to set up (accepted domains of the tenant)" },
    { name = "key-size", type = "integer", help = "1024 or 2048 (new configs; a rotation's new key)" },
    { name = "publish", type = "string", default = "print", help = "print, azure-dns or rfc2136" },
    { name = "enable", type = "boolean", default = false, help = "turn signing on once both CNAMEs resolve" },
    { name = "rotate", type = "boolean", default = false, help = "rotate the keys (after the other steps)" },
    { name = "wait", type = "integer", default = 300, help = "seconds to wait for the CNAMEs to resolve (--enable)" },
    { name = "subscription", type = "string", help = "azure-dns: the subscription of the DNS zone (default: the profile's)" },
    { name = "resource-group", type = "string", help = "azure-dns: only zones in this resource group" },
    { name = "zone", type = "string", help = "the DNS zone (azure-dns, rfc2136; default: found / the domain)" },
    { name = "dns-server", type = "string", help = "rfc2136: the primary server, HOST[:PORT]" },
    { name = "tsig-key", type = "secret", help = "rfc2136: the TSIG key (file:KEYFILE in BIND/Knot form, or env:VAR with [hmac-sha256:]NAME:SECRET)" },
  },
  run = function(ctx, p)
    if not PUBLISH[p.publish] then ctx:fail("--publish must be print, azure-dns or rfc2136 (not '%s')", p.publish) end
    if p.key_size and not dkim.KEY_SIZES[p.key_size] then ctx:fail("--key-size must be 1024 or 2048") end
    local resolver, sim_dns = rb.resolver(ctx)
    local t = rb.open(ctx, "target", p.tenant)
    if not t then ctx:usage("which tenant? pass --tenant PROFILE (or --profile, or --sim)") end
    if p.publish == "azure-dns" and not session.sim(ctx) and not (p.subscription or (t.azure and t.azure.subscription)) then
      ctx:fail("--publish azure-dns needs --subscription (or a profile with subscription = ...)")
    end
    local out = { tenant = t.name, domains = {} }
    for _, d in ipairs(p.domain) do
      local row, err = one(ctx, p, t, d:lower(), resolver, sim_dns)
      if row then
        out.domains[#out.domains + 1] = row
        ctx:item(d, true)
      else
        ctx:say("%s: %s", d, tostring(err))
        out.domains[#out.domains + 1] = { domain = d, error = tostring(err) }
        ctx:item(d, false, err)
      end
    end
    ctx:summary("tenant", t.name)
    ctx:summary("domains", #p.domain)
    return out
  end,
}
