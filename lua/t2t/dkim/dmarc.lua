-- t2t.dkim.dmarc: DMARC records and policy discovery — RFC 7489 (Organizational Domain from the
-- Public Suffix List) and RFC 9989, which obsoletes it (a DNS tree walk, no PSL; pct, rf and ri
-- removed; t, psd and np core).  Records are tag-lists (t2t.core.dkim's parser, lenient).
--
--   dmarc.parse(text) -> {tags, p, sp, np, adkim, aspf, rua = {uris}, ruf = {uris}, warnings,
--                         errors} | nil, err          (nil: not a DMARC record at all)
--   dmarc.discover(resolver, domain) -> {record, source, applies, via, queries, ...} | nil, err
--   dmarc.org_domain(domain) -> the RFC 7489 Organizational Domain (PSL) | nil, why
local C = require "t2t.core.dkim"

local M = {}

local POLICIES = { none = true, quarantine = true, reject = true }
local REMOVED = { pct = "RFC 9989 removed pct (receivers now ignore it: the policy applies to all mail)",
                  rf = "RFC 9989 removed rf", ri = "RFC 9989 removed ri" }
local KNOWN = { v = true, p = true, sp = true, np = true, adkim = true, aspf = true, fo = true,
                rua = true, ruf = true, t = true, psd = true, pct = true, rf = true, ri = true }

M.MAX_QUERIES = 8          -- RFC 9989 §4.10: the tree walk asks at most this many names

local function uris(v, errors, tag)
  local out = {}
  for u in (v or ""):gmatch("[^,]+") do
    u = u:match("^%s*(.-)%s*$")
    local uri, size = u:match("^(.-)!(%d+[kmgt]?)$")
    uri = uri or u
    if not uri:lower():match("^mailto:[^@%s]+@[^@%s]+%.[^@%s]+$") then
      errors[#errors + 1] = string.format("%s: '%s' is not a mailto: URI", tag, u)
    else
      out[#out + 1] = { uri = uri, address = uri:sub(8):lower(), size = size }
    end
  end
  return out
end

-- parse(text) -> record | nil, err.  Errors make the record invalid; warnings do not.
function M.parse(text)
  if type(text) ~= "string" or not text:match("^%s*v%s*=%s*DMARC1%s*;?") and not text:match("^%s*v%s*=%s*DMARC1%s*$") then
    return nil, "not a DMARC record (must start with v=DMARC1)"
  end
  local tags, err = C.taglist(text, true)
  if not tags then return nil, "DMARC tag-list: " .. err end
  local r = { text = text, tags = tags, errors = {}, warnings = {} }
  if tags[1] ~= "v" or tags.v ~= "DMARC1" then return nil, "not a DMARC record (v=DMARC1 must come first)" end
  for _, t in ipairs(tags) do
    if REMOVED[t] then r.warnings[#r.warnings + 1] = REMOVED[t] .. " (" .. t .. "=" .. tags[t] .. ")"
    elseif not KNOWN[t] then r.warnings[#r.warnings + 1] = "unknown tag " .. t .. "= (ignored)" end
  end
  for _, k in ipairs { "p", "sp", "np" } do
    local v = tags[k] and tags[k]:lower()
    if v and not POLICIES[v] then r.errors[#r.errors + 1] = k .. "=" .. tags[k] .. " is not none, quarantine or reject"
    else r[k] = v end
  end
  if not tags.p then
    r.warnings[#r.warnings + 1] = "no p= (RFC 9989 reads it as p=none; RFC 7489 receivers ignore the record)"
  end
  for _, k in ipairs { "adkim", "aspf" } do
    local v = (tags[k] or "r"):lower()
    if v ~= "r" and v ~= "s" then r.errors[#r.errors + 1] = k .. "= must be r or s" end
    r[k] = v
  end
  r.rua, r.ruf = uris(tags.rua, r.errors, "rua"), uris(tags.ruf, r.errors, "ruf")
  if tags.pct then
    local n = tonumber(tags.pct)
    if not n or n < 0 or n > 100 or n % 1 ~= 0 then r.errors[#r.errors + 1] = "pct= must be 0..100"
    else r.pct = n end
  end
  if tags.t and not tags.t:lower():match("^[yn]$") then r.errors[#r.errors + 1] = "t= must be y or n" end
  r.testing = tags.t and tags.t:lower() == "y"
  r.psd = tags.psd and tags.psd:lower()
  if r.psd and not ({ y = true, n = true, u = true })[r.psd] then r.errors[#r.errors + 1] = "psd= must be y, n or u" end
  if tags.fo and not r.ruf[1] then r.warnings[#r.warnings + 1] = "fo= is set but there is no ruf= to send failure reports to" end
  if #r.rua + #r.ruf > 4 then r.warnings[#r.warnings + 1] = "many report addresses: receivers may send to the first two only" end
  return r
end

-- valid(record) -> the policy to apply ("none" when p is missing or invalid but rua is valid,
-- RFC 7489 §6.6.3) or nil when the record must be ignored.
local function effective(r)
  if r.p then return r.p end
  if r.tags.p == nil then return "none" end
  if #r.rua > 0 then return "none" end
  return nil
end

-- The DMARC records at _dmarc.<name>: {text...}, parsed | nil, err (DNS error).
local function records_at(resolver, name)
  local txt, res = resolver:txt("_dmarc." .. name)
  if not txt then return nil, res end
  local found = {}
  for _, t in ipairs(txt) do
    if t:match("^%s*[vV]%s*=%s*DMARC1") then found[#found + 1] = t end
  end
  return found, res
end

---------------------------------------------------------------------------------------------
-- The Public Suffix List (RFC 7489 §3.2), from Debian's publicsuffix package when installed.

local PSL_PATHS = { "/usr/share/publicsuffix/public_suffix_list.dat" }
local psl

local function load_psl()
  if psl ~= nil then return psl end
  psl = false
  for _, p in ipairs(PSL_PATHS) do
    local f = io.open(p, "r")
    if f then
      psl = { rules = {}, exceptions = {}, wild = {} }
      for line in f:lines() do
        local rule = line:match("^%s*([^%s/][^%s]*)")
        if rule then
          rule = rule:lower()
          if rule:sub(1, 1) == "!" then psl.exceptions[rule:sub(2)] = true
          elseif rule:sub(1, 2) == "*." then psl.wild[rule:sub(3)] = true
          else psl.rules[rule] = true end
        end
      end
      f:close()
      break
    end
  end
  return psl
end

-- org_domain(domain) -> Organizational Domain | nil, why (RFC 7489 §3.2: public suffix + 1 label)
function M.org_domain(domain)
  local list = load_psl()
  if not list then return nil, "the Public Suffix List is not installed (apt-get install publicsuffix)" end
  local labels = {}
  for l in domain:lower():gsub("%.$", ""):gmatch("[^.]+") do labels[#labels + 1] = l end
  local suffix_len = 1                      -- the default rule "*"
  for i = 1, #labels do
    local cand = table.concat(labels, ".", i)
    local parent = table.concat(labels, ".", i + 1)
    if list.exceptions[cand] then suffix_len = #labels - i break end
    if list.rules[cand] or (i < #labels and list.wild[parent]) then suffix_len = #labels - i + 1 break end
  end
  if suffix_len >= #labels then return nil, domain .. " is a public suffix" end
  return table.concat(labels, ".", #labels - suffix_len)
end

---------------------------------------------------------------------------------------------
-- Discovery

-- RFC 9989 §4.10 tree walk: the names to ask, at most 8: the domain, then (skipping to the
-- 7-label suffix when it is longer than 8 labels) one label less each time.
function M.walk_names(domain)
  local labels = {}
  for l in domain:lower():gsub("%.$", ""):gmatch("[^.]+") do labels[#labels + 1] = l end
  local names = { table.concat(labels, ".") }
  local start = #labels > 8 and #labels - 7 + 1 or 2
  for i = start, #labels do
    if #names >= M.MAX_QUERIES then break end
    names[#names + 1] = table.concat(labels, ".", i)
  end
  return names
end

local function pick(found)
  if #found == 0 then return nil end
  if #found > 1 then return nil, #found .. " DMARC records at one name: DMARC is not applied (RFC 7489 §6.6.3)" end
  return M.parse(found[1])
end

-- discover(resolver, domain) -> {record, source, applies, subdomain, via = "rfc9989",
--   rfc7489 = {source, org_domain, agrees}, queries = {names}, problem} | nil, DNS err.
-- applies: p at the domain itself, sp (else p) when the record comes from a parent.
function M.discover(resolver, domain)
  domain = domain:lower():gsub("%.$", "")
  local out = { domain = domain, queries = {}, via = "rfc9989" }
  for _, name in ipairs(M.walk_names(domain)) do
    out.queries[#out.queries + 1] = "_dmarc." .. name
    local found, err = records_at(resolver, name)
    if not found then return nil, err end
    local rec, why = pick(found)
    if why then out.problem, out.source = why, name break end
    if rec then
      out.record, out.source = rec, name
      if rec.psd == "y" and name ~= domain then out.psd = true end
      break
    end
    if #found > 0 then
      local _, perr = M.parse(found[1])
      out.problem, out.source = perr, name
      break
    end
  end
  local r = out.record
  if r then
    out.subdomain = out.source ~= domain
    local pol = effective(r)
    out.applies = out.subdomain and (r.sp or pol) or pol
    if not pol then out.problem = "the record's p= is invalid and it has no valid rua=: receivers ignore it" end
  end
  local org, oerr = M.org_domain(domain)
  out.rfc7489 = { org_domain = org, note = oerr }
  if org then
    out.rfc7489.source = (out.source == domain or out.source == org) and out.source or nil
    if not out.rfc7489.source and out.source and out.source ~= domain then
      out.rfc7489.note = "RFC 7489 receivers look only at " .. domain .. " and " .. org ..
                         "; the policy found at " .. out.source .. " reaches only RFC 9989 receivers"
    end
  end
  return out
end

return M
