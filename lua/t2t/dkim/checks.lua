-- t2t.dkim.checks: the mail-authentication posture of a tenant's accepted domains — every
-- ScubaGear rule (MS.EXO.2.2, 3.1, 4.1–4.4), the Maester/ORCA extras (CISA.MS.EXO.2.2 and 3.1 as
-- Maester checks them, ORCA.108, ORCA.108.1, ORCA.235, MT.1182) and t2t's own DNS checks, each
-- result carrying its rule id (roles-and-mailauth.md §7–9, dkim.md).  Without the weaknesses
-- listed there: SPF is parsed and evaluated (one record, limits, redirect followed), DKIM
-- compares the CNAME targets with Selector{1,2}CNAME, DMARC is found by the RFC 9989 tree walk
-- (never "the last two labels") and several records are a failure.
--
--   checks.tenant(t, {resolver, federal, now}) -> {tenant, domains = {{domain, kind, rules}}, counts}
--   checks.cnames(resolver, row) -> {ok, why, selectors = {...}}
-- A rule result: {id, title, status = pass|fail|warn|skip|error, detail, fix}.
local dkim = require "t2t.dkim"
local spf = require "t2t.dkim.spf"
local dmarc = require "t2t.dkim.dmarc"
local C = require "t2t.core.dkim"

local M = {}

M.CLOUD_INCLUDE = {                          -- dkim.md §2.1 [MS-SPF]
  global = "spf.protection.outlook.com", gcc = "spf.protection.outlook.com",
  usgov = "spf.protection.outlook.com", usgovhigh = "spf.protection.office365.us",
  dod = "spf.protection.office365.us", china = "spf.protection.partner.outlook.cn",
}
M.CISA_RUA = "reports@dmarc.cyber.dhs.gov"
M.MIN_TTL = 3600

local function norm(n) return (tostring(n or ""):lower():gsub("%.$", "")) end

local function rule(id, title, status, detail, fix)
  return { id = id, title = title, status = status, detail = detail, fix = fix }
end

---------------------------------------------------------------------------------------------
-- DKIM CNAMEs and keys

local function p_of(record)
  local tags = record and C.taglist(record, true)
  return tags and tags.p and tags.p:gsub("%s", "")
end

-- One selector: what is published at selectorN._domainkey.<domain>.
local function selector(resolver, domain, s)
  local out = { name = s.name, host = s.host, expected = norm(s.cname) }
  local r, err = resolver:query(s.host, "CNAME")
  if not r then out.status, out.why = "error", tostring(err) return out end
  local rec = r.records[1]
  if rec then
    out.found, out.ttl = norm(rec.target), rec.ttl
    if out.found == out.expected then
      out.status = "ok"
    elseif out.found == out.expected .. "." .. domain then
      out.status, out.why = "appended", string.format("%s points to %s: the DNS host appended the zone; " ..
        "end the target with a dot (%s.)", s.host, out.found, out.expected)
    else
      out.status, out.why = "wrong", string.format("%s points to %s, Exchange Online expects %s", s.host, out.found, out.expected)
      if dkim.format(out.found) ~= dkim.format(out.expected) then
        out.why = out.why .. " (" .. dkim.format(out.found) .. " format where the service uses the " .. dkim.format(out.expected) .. " one)"
      end
    end
  else
    local txt = resolver:query(s.host, "TXT")
    local a = resolver:query(s.host, "A")
    local doubled = resolver:query(s.host .. "." .. domain, "CNAME")
    if txt and #txt.records > 0 then
      out.status, out.why = "txt", s.host .. " has a TXT record where the CNAME belongs: replace it with the CNAME"
    elseif doubled and #doubled.records > 0 then
      out.status, out.why = "doubled", string.format("the CNAME is at %s.%s (zone name appended twice): publish it at %s",
                                                     s.host, domain, s.host)
    elseif a and #a.records > 0 then
      out.status, out.why = "proxied", s.host .. " answers with an address, not a CNAME: turn off the proxy (e.g. Cloudflare: DNS only)"
    else
      out.status, out.why = "missing", "no CNAME at " .. s.host
    end
  end
  if out.status == "ok" then                   -- the key behind it
    local k, kerr = resolver:query(s.host, "TXT")
    local txt = k and k.records[1] and k.records[1].text
    if not k then out.key = { status = "error", why = tostring(kerr) }
    elseif not txt then out.key = { status = "missing", why = "no key at " .. out.expected .. " yet" }
    else
      local key, why = C.key(txt)
      out.key = { status = key and "ok" or "bad", why = why, bits = key and key:info().bits, type = key and key:info().type }
      if key and s.public_key and p_of(s.public_key) and p_of(s.public_key) ~= p_of(txt) then
        out.key.status, out.key.why = "mismatch", "the key at " .. out.expected .. " is not Selector" .. s.name:sub(-1) .. "PublicKey"
      end
    end
  end
  return out
end

-- cnames(resolver, row) -> {ok, why, selectors}: both CNAMEs resolve to the service's targets.
function M.cnames(resolver, row)
  resolver = resolver or require("t2t.dns").default()
  local res = { ok = true, selectors = {} }
  for i, s in ipairs(row.selectors or {}) do
    local x = selector(resolver, row.domain, s)
    res.selectors[i] = x
    if x.status ~= "ok" and res.ok then res.ok, res.why = false, x.why end
  end
  if not row.selectors then res.ok, res.why = false, "no DKIM signing config" end
  return res
end

---------------------------------------------------------------------------------------------
-- Rules per domain

local function dkim_rules(d, resolver, rules, has_mx)
  local row = d.row
  if row.kind == "coexistence" or row.kind == "parked" then
    rules[#rules + 1] = rule("MS.EXO.3.1v1", "DKIM enabled", "skip", row.kind .. " domain: no DKIM (Microsoft manages it / it sends no mail)")
    return
  end
  if row.kind == "initial" and not row.config then
    rules[#rules + 1] = rule("MS.EXO.3.1v1", "DKIM enabled", "pass", "the initial domain is signed by Microsoft automatically")
    return
  end
  local pub = row.config and M.cnames(resolver, row) or { ok = false, why = "no DKIM signing config", selectors = {} }
  d.cnames = pub
  local on = row.enabled == true
  rules[#rules + 1] = rule("MS.EXO.3.1v1", "DKIM enabled", (on and pub.ok) and "pass" or "fail",
    on and (pub.ok and "signing, CNAMEs published" or pub.why) or (row.config and "signing is off" or "no DKIM signing config"),
    "t2t run dkim-setup --domain " .. row.domain .. " --publish azure-dns|rfc2136|print --enable")
  if row.kind == "custom" then
    if not has_mx then
      rules[#rules + 1] = rule("ORCA.108", "DKIM signing config enabled (domains with MX)", "skip", "no MX record")
    else
      rules[#rules + 1] = rule("ORCA.108", "DKIM signing config enabled (domains with MX)", on and "pass" or "fail",
        on and "enabled" or "not enabled", "t2t run dkim-setup --domain " .. row.domain .. " --enable")
      rules[#rules + 1] = rule("ORCA.108.1", "selector CNAMEs equal Selector1CNAME/Selector2CNAME",
        row.config and (pub.ok and "pass" or "fail") or "fail", pub.ok and "both match" or pub.why,
        "publish the records 't2t run dkim-setup --domain " .. row.domain .. " --publish print' shows")
    end
  end
  for _, s in ipairs(pub.selectors) do
    local st = s.status == "ok" and ((s.ttl or M.MIN_TTL) < M.MIN_TTL and "warn" or "pass")
              or (s.status == "error" and "error" or "fail")
    local detail = s.status == "ok" and string.format("%s -> %s (TTL %s)", s.host, s.expected, tostring(s.ttl)) or s.why
    if st == "warn" then detail = detail .. ": below 3600 s, receivers may see dkim=temperror (Microsoft recommends 3600)" end
    rules[#rules + 1] = rule("T2T.DKIM.CNAME", s.name .. " CNAME", st, detail)
    if s.key then
      local kst = s.key.status == "ok" and "pass" or (s.key.status == "error" and "error" or "fail")
      rules[#rules + 1] = rule("T2T.DKIM.KEY", s.name .. " key behind the CNAME", kst,
        s.key.status == "ok" and string.format("%s %s-bit", s.key.type, s.key.bits) or s.key.why)
    end
  end
  if row.config and on then                    -- Maester's check of the active selector
    local act = row.active == "selector2" and 2 or 1
    local s = pub.selectors[act]
    local ok = s and s.key and s.key.status == "ok"
    rules[#rules + 1] = rule("CISA.MS.EXO.3.1", "the active selector (" .. tostring(row.active) .. ") has a valid key", ok and "pass" or "fail",
      ok and "" or (s and (s.key and s.key.why or s.why)) or "no selector")
    local small = (row.selectors[1].key_size or 0) < 2048 or (row.selectors[2].key_size or 0) < 2048
    rules[#rules + 1] = rule("T2T.DKIM.ROTATION", "keys", small and "warn" or "pass",
      (row.rotating and ("rotating: " .. tostring(row.next) .. " signs from " .. os.date("!%Y-%m-%d %H:%M UTC", row.rotate_on) .. "; ") or "") ..
      string.format("%s/%s bits", tostring(row.selectors[1].key_size), tostring(row.selectors[2].key_size)),
      small and "rotate with --key-size 2048 twice (each rotation upgrades the inactive selector; 96 h apart)" or nil)
  end
end

local function spf_rules(d, resolver, rules, cloud)
  local a = spf.analyze(resolver, d.row.domain)
  d.spf = a
  local include = M.CLOUD_INCLUDE[cloud or "global"] or M.CLOUD_INCLUDE.global
  local fix = "publish one TXT record: v=spf1 include:" .. include .. " -all"
  if a.result == "temperror" then
    rules[#rules + 1] = rule("MS.EXO.2.2v3", "SPF fails unapproved senders", "error", a.why)
    return
  end
  local strict = a.all == "-" or a.all == "~"
  local ok = a.record and a.result ~= "permerror" and strict
  rules[#rules + 1] = rule("MS.EXO.2.2v3", "SPF fails unapproved senders (-all or ~all)", ok and "pass" or "fail",
    not a.record and (a.why or "no SPF record") or (a.result == "permerror" and a.why) or
      string.format("%s (ends with %sall)", a.record, a.all or "no "), fix)
  if not a.record then return end
  local lim_ok = a.lookups <= spf.LOOKUP_LIMIT and a.void <= spf.VOID_LIMIT and #a.errors == 0
  rules[#rules + 1] = rule("T2T.SPF.LIMITS", "SPF within RFC 7208 limits (10 lookups, 2 void)", lim_ok and "pass" or "fail",
    string.format("%d lookups, %d void%s", a.lookups, a.void, #a.errors > 0 and ("; " .. table.concat(a.errors, "; ")) or ""),
    not lim_ok and "flatten or drop includes until the record costs at most 10 lookups" or nil)
  local reached = false
  for _, inc in ipairs(a.includes) do if inc == include then reached = true end end
  for _, r in ipairs(a.redirects) do if r == include then reached = true end end
  rules[#rules + 1] = rule("CISA.MS.EXO.2.2", "SPF includes " .. include .. " (this tenant's cloud)", reached and "pass" or "fail",
    reached and "" or "the include chain does not reach " .. include, fix)
  rules[#rules + 1] = rule("ORCA.235", "SPF hard fail (-all)", a.all == "-" and "pass" or "fail",
    "ends with " .. (a.all and (a.all .. "all") or "no all"), "end the record with -all (Microsoft recommends it; ~all is for testing)")
end

local function dmarc_rules(d, resolver, rules, o)
  local row = d.row
  local disc, err = dmarc.discover(resolver, row.domain)
  if not disc then
    rules[#rules + 1] = rule("MS.EXO.4.1v1", "DMARC published", "error", tostring(err))
    return
  end
  d.dmarc = disc
  local r = disc.record
  local where = disc.source and ("_dmarc." .. disc.source) or ("any of " .. table.concat(disc.queries, ", "))
  local fix = "publish TXT _dmarc." .. row.domain .. ": v=DMARC1; p=reject; rua=mailto:dmarc-reports@" .. row.domain
  rules[#rules + 1] = rule("MS.EXO.4.1v1", "DMARC published", (r and not disc.problem) and "pass" or "fail",
    disc.problem or (r and ("found at " .. where .. (disc.subdomain and " (a parent: sp/p apply)" or "")) or ("no record at " .. where)), fix)
  if not r then return end
  rules[#rules + 1] = rule("MS.EXO.4.2v1", "DMARC policy is reject", disc.applies == "reject" and "pass" or "fail",
    "applies: " .. tostring(disc.applies) .. (disc.subdomain and " (from " .. disc.source .. ")" or ""),
    "set p=reject" .. (disc.subdomain and " (and sp=reject at " .. disc.source .. ")" or ""))
  local federal = o.federal or row.domain:match("%.gov$")
  local has_cisa = false
  for _, u in ipairs(r.rua) do if u.address == M.CISA_RUA then has_cisa = true end end
  rules[#rules + 1] = rule("MS.EXO.4.3v1", "aggregate reports go to " .. M.CISA_RUA,
    not federal and "skip" or (has_cisa and "pass" or "fail"),
    not federal and "only for US federal executive-branch agencies (--federal)" or "",
    "add mailto:" .. M.CISA_RUA .. " to rua=")
  local agency_rua = 0
  for _, u in ipairs(r.rua) do if u.address ~= M.CISA_RUA then agency_rua = agency_rua + 1 end end
  local ok44 = agency_rua > 0 and #r.ruf > 0
  rules[#rules + 1] = rule("MS.EXO.4.4v1", "the agency gets aggregate (rua) and failure (ruf) reports", ok44 and "pass" or "fail",
    string.format("%d rua, %d ruf addresses of its own", agency_rua, #r.ruf), "add rua= and ruf= mailto: addresses you read")
  local mature = disc.applies == "reject" and (r.pct == nil or r.pct == 100)
  rules[#rules + 1] = rule("MT.1182", "DMARC at full enforcement (p=reject, all mail)", mature and "pass" or "warn",
    "p=" .. tostring(disc.applies) .. (r.pct and (", pct=" .. r.pct) or ""))
  local notes = {}
  for _, w in ipairs(r.warnings) do notes[#notes + 1] = w end
  for _, e in ipairs(r.errors) do notes[#notes + 1] = e end
  if disc.rfc7489 and disc.rfc7489.note then notes[#notes + 1] = disc.rfc7489.note end
  rules[#rules + 1] = rule("T2T.DMARC.RECORD", "DMARC record is clean (RFC 9989)", #r.errors > 0 and "fail" or (#notes > 0 and "warn" or "pass"),
    table.concat(notes, "; "))
end

-- External report destinations need the receiver's authorization record (RFC 7489 §7.1).
local function report_rule(d, resolver, rules)
  local r = d.dmarc and d.dmarc.record
  if not r then return end
  local org = dmarc.org_domain(d.row.domain) or d.row.domain
  local missing = {}
  for _, u in ipairs(r.rua) do
    local dest = u.address:match("@(.+)$")
    local dorg = dmarc.org_domain(dest) or dest
    if dorg ~= org and dest ~= M.CISA_RUA:match("@(.+)$") then
      local txt = resolver:txt(d.row.domain .. "._report._dmarc." .. dest)
      local ok = false
      for _, t in ipairs(txt or {}) do if t:match("^%s*v%s*=%s*DMARC1") then ok = true end end
      if not ok then missing[#missing + 1] = dest end
    end
  end
  rules[#rules + 1] = rule("T2T.DMARC.REPORTS", "external report addresses are authorized", #missing == 0 and "pass" or "warn",
    #missing == 0 and "" or ("no " .. d.row.domain .. "._report._dmarc.<dest> record at " .. table.concat(missing, ", ")))
end

-- domain(row, {resolver, cloud, federal}) -> {domain, kind, rules}
function M.domain(row, o)
  o = o or {}
  local resolver = o.resolver or require("t2t.dns").default()
  local d = { domain = row.domain, kind = row.kind, row = row, rules = {} }
  if row.kind == "coexistence" then
    d.rules[1] = rule("MS.EXO.2.2v3", "SPF", "skip", "coexistence domain: Microsoft manages its DNS")
    return d
  end
  local mx = resolver:query(row.domain, "MX")
  local has_mx = mx and #mx.records > 0
  spf_rules(d, resolver, d.rules, o.cloud)
  dkim_rules(d, resolver, d.rules, has_mx)
  dmarc_rules(d, resolver, d.rules, o)
  report_rule(d, resolver, d.rules)
  return d
end

-- tenant(t, {resolver, federal, domains, concurrency}) -> report | nil, err
function M.tenant(t, o)
  o = o or {}
  local rows, err = dkim.status(t, { domains = o.domains })
  if not rows then return nil, err end
  local out = { tenant = t.name, cloud = t.cloud, domains = {}, counts = { pass = 0, fail = 0, warn = 0, skip = 0, error = 0 } }
  local res = require("t2t").parallel(rows, function(row)
    return M.domain(row, { resolver = o.resolver, cloud = t.cloud, federal = o.federal })
  end, { concurrency = o.concurrency or 4, on_progress = o.on_progress })
  for i, r in ipairs(res) do
    local d = r.ok and r.value or { domain = rows[i].domain, kind = rows[i].kind,
      rules = { rule("T2T.CHECK", "checks ran", "error", tostring(r.err)) } }
    d.row = nil
    for _, x in ipairs(d.rules) do out.counts[x.status] = (out.counts[x.status] or 0) + 1 end
    out.domains[#out.domains + 1] = d
  end
  return out
end

return M
