-- mail-auth: the SPF, DKIM and DMARC posture of every accepted domain, in one tenant or both.
local checks = require "t2t.dkim.checks"
local rb = require "t2t.dkim.runbooks"

return runbook {
  name = "mail-auth",
  description = "Check SPF, DKIM and DMARC of every accepted domain (ScubaGear MS.EXO.2.2/3.1/4.1-4.4, Maester/ORCA, RFCs).\n\n" ..
    "Read-only. For each accepted domain of the tenant(s): SPF (one record, -all or ~all, the include of the\n" ..
    "tenant's cloud, RFC 7208's 10-lookup and 2-void limits, redirect followed), DKIM (the signing config in\n" ..
    "Exchange Online, both selector CNAMEs against Selector1CNAME/Selector2CNAME: missing, TXT instead of\n" ..
    "CNAME, zone doubled, trailing dot, wrong target, TTL under 3600; the key behind them), DMARC (found by the\n" ..
    "RFC 9989 tree walk, p/sp, report addresses, tags RFC 9989 removed). Every result carries its rule id.\n" ..
    "Exit 3 when a rule fails. DNS: --dns HOST:PORT, else the simulator's under --sim, else the system's.",
  -- read-only: the accepted domains and DKIM configs of each tenant (docs/roles.md)
  needs = { exchange = { "View-Only Configuration" } },
  params = {
    { name = "target", type = "string", help = "profile of the target tenant" },
    { name = "source", type = "string", help = "profile of the source tenant" },
    { name = "side", type = "string", help = "target, source or both (default: every side with a profile)" },
    { name = "domain", type = "list", help = "only these domains (default: every accepted domain)" },
    { name = "federal", type = "boolean", default = false, help = "apply MS.EXO.4.3 (US federal agencies: reports to DHS) to every domain" },
    { name = "details", type = "boolean", default = false, help = "list passing and skipped rules too" },
  },
  run = function(ctx, p)
    local resolver = rb.resolver(ctx)
    local out = { tenants = {} }
    local failed = 0
    for _, x in ipairs(rb.tenants(ctx, p)) do
      local report, err = checks.tenant(x.t, { resolver = resolver, federal = p.federal, domains = p.domain })
      if not report then ctx:fail("%s tenant %s: %s", x.role, x.t.name, tostring(err)) end
      report.role = x.role
      rb.show(ctx, report, p.details)
      for _, d in ipairs(report.domains) do
        for _, r in ipairs(d.rules) do
          local bad = r.status == "fail" or r.status == "error"
          if bad then failed = failed + 1 end
          ctx:item(report.tenant .. " " .. d.domain .. " " .. r.id, not bad, bad and (r.title .. ": " .. tostring(r.detail)) or nil)
        end
      end
      out.tenants[#out.tenants + 1] = report
      for k, v in pairs(report.counts) do ctx:summary(x.role .. " " .. k, v) end
    end
    ctx:summary("rules failed", failed)
    return out
  end,
}
