-- t2t.dkim.runbooks: what the mail-auth, dkim-setup and dkim-verify runbooks share — the DNS
-- resolver to use (--dns, else the simulator's DNS server under --sim, else the system's),
-- opening the tenants, and the posture table.
local session = require "t2t.tenant.session"

local M = {}

-- resolver(ctx) -> the t2t.dns resolver for this run.  Under --sim without --dns it is the
-- simulator's DNS server (started on first use); a simulator without one is an error, never
-- a silent fall-back to the Internet's DNS for simulated domains.
function M.resolver(ctx)
  local dns = require "t2t.dns"
  local s = not ctx.opts.dns and session.sim(ctx)
  if s then
    local info, err = s:dns()
    if not info then ctx:fail("the simulator has no DNS server: %s", tostring(err)) end
    if M.configured ~= info.address then
      assert(dns.configure { servers = info.address })
      M.configured = info.address
    end
    return dns.default(), info
  end
  return dns.default()
end

-- open(ctx, role, name) -> tenant, or ends the run with what to fix.
function M.open(ctx, role, name)
  return session.must(ctx, session.open(ctx, role, name))
end

-- tenants(ctx, p) -> { {role, t}, ... }: --target/--source/--side, as verify-setup takes them.
function M.tenants(ctx, p)
  local sim = session.sim(ctx) ~= nil
  local side = p.side or ((p.target or sim) and (p.source or sim) and "both")
               or (p.target and "target") or (p.source and "source")
               or (ctx.opts.profile and "target")
  if not side then ctx:usage("which tenant? pass --target PROFILE and/or --source PROFILE (or --profile, or --sim)") end
  if side ~= "target" and side ~= "source" and side ~= "both" then ctx:fail("--side must be target, source or both") end
  local out = {}
  if side == "source" or side == "both" then out[#out + 1] = { role = "source", t = M.open(ctx, "source", p.source) } end
  if side == "target" or side == "both" then out[#out + 1] = { role = "target", t = M.open(ctx, "target", p.target) } end
  return out
end

local ORDER = { error = 5, fail = 4, warn = 3, pass = 2, skip = 1 }
local AREA = { ["MS.EXO.2.2v3"] = "spf", ["T2T.SPF.LIMITS"] = "spf", ["CISA.MS.EXO.2.2"] = "spf", ["ORCA.235"] = "spf",
               ["MS.EXO.3.1v1"] = "dkim", ["ORCA.108"] = "dkim", ["ORCA.108.1"] = "dkim", ["T2T.DKIM.CNAME"] = "dkim",
               ["T2T.DKIM.KEY"] = "dkim", ["CISA.MS.EXO.3.1"] = "dkim", ["T2T.DKIM.ROTATION"] = "dkim" }

local function area(id)
  return AREA[id] or (id:match("DMARC") or id:match("^MS%.EXO%.4") or id == "MT.1182") and "dmarc" or "other"
end

-- worst(rules) -> {spf, dkim, dmarc}: the worst status of each area.
function M.worst(rules)
  local w = {}
  for _, r in ipairs(rules) do
    local a = area(r.id)
    if not w[a] or ORDER[r.status] > ORDER[w[a]] then w[a] = r.status end
  end
  return w
end

local MARK = { fail = "FAIL", error = "ERROR", warn = "WARN", pass = "PASS", skip = "SKIP" }

-- show(ctx, report, details): the table and the lines that need action.
function M.show(ctx, report, details)
  ctx:say("\nTenant %s (%s cloud)", report.tenant, report.cloud or "global")
  ctx:say("  %-30s %-11s %-6s %-6s %-6s", "DOMAIN", "KIND", "SPF", "DKIM", "DMARC")
  for _, d in ipairs(report.domains) do
    local w = M.worst(d.rules)
    ctx:say("  %-30s %-11s %-6s %-6s %-6s", d.domain, d.kind, w.spf or "-", w.dkim or "-", w.dmarc or "-")
  end
  for _, d in ipairs(report.domains) do
    for _, r in ipairs(d.rules) do
      if details or r.status == "fail" or r.status == "error" or r.status == "warn" then
        ctx:say("  [%s] %s  %s  %s%s", MARK[r.status], d.domain, r.id, r.title,
                (r.detail and r.detail ~= "") and (": " .. r.detail) or "")
        if r.fix and (r.status == "fail" or r.status == "error") then ctx:say("         fix: %s", r.fix) end
      end
    end
  end
end

return M
