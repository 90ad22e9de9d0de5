-- t2t.mailuser.map: what each source mailbox becomes in the target (ms-setup-and-prep.md §5.1):
-- UPN, alias and primary SMTP address from a domain map (`contoso.com=fabrikam.com`, several;
-- the initial domains always map to each other) or from an explicit TargetUser; the
-- ExternalEmailAddress pointing back at the source; `x500:<LegacyExchangeDN>` and every source
-- X500/X400 verbatim; a proxy in the target delivery domain; mapped secondary SMTP addresses.
-- A source-domain SMTP address is never copied.  Two sources mapped to one target are both
-- reported, never prepared over each other.
local C = require "t2t.mailuser.common"

local M = {}
local lower, fmt = string.lower, string.format

-- rules{domains = {"a.com=b.com", ...} | {["a.com"] = "b.com"}, source_initial, target_initial,
-- accepted = {domain = true, ...} (the target's accepted domains), tdd} -> rules | nil, err.
function M.rules(o)
  local r = { domains = {}, accepted = {}, tdd = nil }
  for d in pairs(o.accepted or {}) do r.accepted[lower(d)] = true end
  local function add(src, tgt, where)
    src, tgt = lower(src), lower(tgt)
    if r.domains[src] and r.domains[src] ~= tgt then
      return nil, fmt("%s maps %s to both %s and %s: keep one", where, src, r.domains[src], tgt)
    end
    if next(r.accepted) and not r.accepted[tgt] then
      return nil, fmt("%s maps %s to %s, which is not an accepted domain of the target (accepted: %s)",
                      where, src, tgt, M.list_domains(r.accepted))
    end
    r.domains[src] = tgt
    return true
  end
  local given = o.domains or {}
  if given[1] == nil and next(given) then
    for s, t in pairs(given) do
      local ok, err = add(s, t, "the domain map")
      if not ok then return nil, err end
    end
  else
    for _, pair in ipairs(given) do
      local s, t = tostring(pair):match("^%s*([^=%s]+)%s*=%s*([^=%s]+)%s*$")
      if not s or not (s == "*" or s:find(".", 1, true)) or not t:find(".", 1, true) then
        return nil, fmt("--domain-map entry '%s' is not SOURCE=TARGET (e.g. contoso.com=fabrikam.com)", tostring(pair))
      end
      local ok, err = add(s, t, "--domain-map")
      if not ok then return nil, err end
    end
  end
  if o.source_initial and o.target_initial and not r.domains[lower(o.source_initial)] then
    r.domains[lower(o.source_initial)] = lower(o.target_initial)
  end
  r.source_initial = o.source_initial and lower(o.source_initial)
  r.target_initial = o.target_initial and lower(o.target_initial)
  r.tdd = lower(o.tdd or o.target_initial or "")
  if r.tdd ~= "" and next(r.accepted) and not r.accepted[r.tdd] then
    return nil, fmt("the target delivery domain %s is not an accepted domain of the target", r.tdd)
  end
  return r
end

function M.list_domains(set)
  local l = {}
  for d in pairs(set) do l[#l + 1] = d end
  table.sort(l)
  return table.concat(l, ", ")
end

local function mapped_domain(rules, dom)
  if not dom then return nil end
  return rules.domains[lower(dom)] or rules.domains["*"]
end

local function local_part(addr) return (tostring(addr):match("^(.*)@[^@]+$")) end

-- The address the target's ExternalEmailAddress points at: the source's own
-- <tenant>.onmicrosoft.com address (it stays with the source when vanity domains move), else
-- its primary address.  Either is one of its EmailAddresses (CSS-val rule 14).
function M.routing_address(u, rules)
  local init = rules.source_initial
  if init then
    for _, p in ipairs(u.EmailAddresses or {}) do
      if C.is_smtp(p) and C.domain_of(p) == init then return C.address(p) end
    end
  end
  return u.PrimarySmtpAddress
end

-- names(u, rules) -> primary SMTP address, UPN of u's target | nil, problem.
function M.names(u, rules)
  local primary
  if u.TargetUser then
    primary = u.TargetUser
  else
    local dom = C.domain_of(u.PrimarySmtpAddress)
    local to = mapped_domain(rules, dom)
    if not to then
      return nil, C.problem("NoDomainMap", fmt("no target domain for %s (its primary address is in %s)",
        tostring(u.PrimarySmtpAddress), tostring(dom)),
        fmt("add --domain-map %s=<target domain>, or give its TargetUser in the CSV", tostring(dom)))
    end
    primary = local_part(u.PrimarySmtpAddress) .. "@" .. to
  end
  local tdom = C.domain_of(primary)
  if next(rules.accepted) and not rules.accepted[tdom] then
    return nil, C.problem("TargetDomainNotAccepted", fmt("%s is not in an accepted domain of the target", primary),
      fmt("use one of: %s", M.list_domains(rules.accepted)))
  end
  local upn = primary
  if not u.TargetUser then
    local to = mapped_domain(rules, C.domain_of(u.UserPrincipalName))
    if to and local_part(u.UserPrincipalName) then upn = local_part(u.UserPrincipalName) .. "@" .. to end
  end
  return primary, upn
end

-- map(u, rules) -> {user = u, target = {...}, problems = {...}}.
function M.map(u, rules)
  local m = { user = u, problems = {} }
  local primary, upn = M.names(u, rules)
  if not primary then
    m.problems[1] = upn
    return m
  end
  local tdom = C.domain_of(primary)
  local alias = (u.Alias and u.Alias ~= "") and u.Alias or local_part(primary)
  local adds, seen = {}, {}
  local function add(p)
    local k = lower(p)
    if not seen[k] then seen[k] = true; adds[#adds + 1] = p end
  end
  if u.LegacyExchangeDN then add("x500:" .. u.LegacyExchangeDN) end
  for _, p in ipairs(u.EmailAddresses or {}) do
    if C.is_x500(p) then add(p) end                                   -- verbatim
  end
  if rules.tdd ~= "" and tdom ~= rules.tdd then add("smtp:" .. alias .. "@" .. rules.tdd) end
  for _, p in ipairs(u.EmailAddresses or {}) do
    if C.is_smtp(p) and lower(C.address(p)) ~= lower(u.PrimarySmtpAddress or "") then
      local to = rules.domains[C.domain_of(p)]                        -- explicit maps only, no "*"
      if to and (not next(rules.accepted) or rules.accepted[to]) then
        local a = local_part(C.address(p)) .. "@" .. to
        if lower(a) ~= lower(primary) then add("smtp:" .. a) end
      end
    end
  end
  m.target = {
    PrimarySmtpAddress = primary, UserPrincipalName = upn, Alias = alias, Name = alias,
    DisplayName = u.DisplayName or alias, ExternalEmailAddress = M.routing_address(u, rules),
    ExchangeGuid = u.ExchangeGuid, ArchiveGuid = u.ArchiveGuid, add = adds,
  }
  return m
end

-- collider(rules) -> c: c:add(u, i) for every user, then c:problems() -> {[i] = problem}: the
-- users whose target primary address or UPN another one shares (both, each naming the others),
-- never prepared over each other.  Only the names are held (a number per key until a second
-- user claims it), so 100k users stay small.
local Collider = {}
Collider.__index = Collider

function M.collider(rules)
  return setmetatable({ rules = rules, by = {}, clashed = {}, who = {} }, Collider)
end

function Collider:add(u, i)
  local primary, upn = M.names(u, self.rules)
  if not primary then return end
  self.who[i] = u.PrimarySmtpAddress .. (u.line and (" (line " .. math.tointeger(u.line) .. ")") or "")
  for _, k in ipairs { lower(primary), lower(upn) } do
    local cur = self.by[k]
    if cur == nil then
      self.by[k] = i
    elseif cur ~= i then
      if type(cur) ~= "table" then cur = { cur }; self.by[k] = cur end
      if cur[#cur] ~= i then cur[#cur + 1] = i end
      self.clashed[k] = cur
    end
  end
end

function Collider:problems()
  local out = {}
  local keys = {}
  for k in pairs(self.clashed) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local l = self.clashed[k]
    for _, i in ipairs(l) do
      if not out[i] then
        local others = {}
        for _, j in ipairs(l) do if j ~= i then others[#others + 1] = self.who[j] end end
        out[i] = C.problem("Collision", fmt("%s maps to %s, as %s does: two sources cannot share one target",
          self.who[i]:match("^%S+"), k, table.concat(others, ", ")),
          "give one of them another TargetUser in the CSV, or change the domain map")
      end
    end
  end
  return out
end

-- collisions(users, rules) -> {[i] = problem} for a list of users.
function M.collisions(users, rules)
  local c = M.collider(rules)
  for i, u in ipairs(users) do c:add(u, i) end
  return c:problems()
end

-- map_all(users, rules) -> mapped list (same order), collisions marked on both sides.
function M.map_all(users, rules)
  local clash = M.collisions(users, rules)
  local out = {}
  for i, u in ipairs(users) do
    out[i] = M.map(u, rules)
    if clash[i] then table.insert(out[i].problems, clash[i]) end
  end
  return out
end

return M
