-- t2t.mailuser: ready every mailbox to move (ms-setup-and-prep.md §3.1-3.2, §5, §6.2).
-- Ensure-style through the tenants' plans, like t2t.tenant: read first, change only what
-- differs, re-runs change nothing.
--
--   local mailuser = require "t2t.mailuser"
--   local users = mailuser.export(source, {entries = list} | {group = "G"} | {all = true},
--                                 {depth = "full"})           -- source: a t2t.tenant
--   local rules = assert(mailuser.rules(target, {domains = {"contoso.com=fabrikam.com"}}, source_info))
--   local m = mailuser.map(users[1], rules)                    -- m.target, m.problems
--   local res = mailuser.ensure(target, m, rules, {clear_previous = false})
--   mailuser.license(target, m, "ctudm")                       -- refuses before the GUID
--   local rows = mailuser.prepare{...}  /  mailuser.validate{...}   -- whole runs, per-user rows
--
-- Parts: t2t.mailuser.list (the CSV of users), .export (source reads), .map (target naming),
-- .ensure (the target MailUser), .license, .rules (CSS-val's checks), .collection (the hand-off
-- file), .report (result rows).
local t2t = require "t2t"
local C = require "t2t.mailuser.common"
local list = require "t2t.mailuser.list"
local export = require "t2t.mailuser.export"
local map = require "t2t.mailuser.map"
local ensure = require "t2t.mailuser.ensure"
local lic = require "t2t.mailuser.license"
local rules_mod = require "t2t.mailuser.rules"
local collection = require "t2t.mailuser.collection"
local report = require "t2t.mailuser.report"

local M = {}
local lower, fmt = string.lower, string.format

M.read_list, M.describe_list = list.read, list.describe
M.read_collection, M.write_collection = collection.read, collection.write
M.open_collection, M.collection_writer = collection.open, collection.writer
M.report = report
M.RULES = rules_mod.NAMES
M.problem, M.key = C.problem, C.key

-- export(source, selector, opts) -> users, failures | nil, err (t2t.mailuser.export.collect).
function M.export(source, selector, opts) return export.collect(source, selector, opts) end
M.scope = export.scope

-- The target's accepted domains as a set | nil, err.
function M.accepted_domains(target)
  local l, err = target:xo("Get-AcceptedDomain", {})
  if not l then return nil, err end
  local set = {}
  for _, d in ipairs(l) do set[lower(d.DomainName or d.Name)] = true end
  return set
end

-- rules(target, {domains, tdd}, source_info = {domain = initial domain}) -> map rules | nil, err.
function M.rules(target, o, source_info)
  local accepted, err = M.accepted_domains(target)
  if not accepted then return nil, err end
  return map.rules { domains = o.domains, accepted = accepted, tdd = o.tdd,
                     source_initial = source_info and source_info.domain, target_initial = target.domain }
end

M.map, M.map_all = map.map, map.map_all

-- ensure(target, m, rules, o) -> result | nil, problem (t2t.mailuser.ensure).
function M.ensure(target, m, rules, o) return ensure.ensure(target, m, rules, o) end

-- license(target, m, sku, o) -> status | nil, problem; sku: a key ("ctudm", skuPartNumber,
-- skuId) or a resolved SKU; o.disable_plans.
function M.license(target, m, sku, o)
  o = o or {}
  if type(sku) == "string" then
    local err
    sku, err = lic.resolve(target, sku, o.disable_plans)
    if not sku then return nil, err end
  end
  return lic.assign(target, m, sku, o)
end
M.resolve_license, M.resolve_licenses = lic.resolve, lic.resolve_all

-- add_to_scope(source, u, scope) -> "added" | "member" | "planned" | nil, err: the source mailbox
-- into the scope group (SourceObject.ps1 does it; §4.5).
function M.add_to_scope(source, u, scope)
  if export.in_scope(scope, u) then return "member" end
  local _, err = source.plan:change { kind = "add", target = fmt("member %s of scope group %s", u.PrimarySmtpAddress,
    scope.name), tenant = source.name, operation = "add_to_scope",
    apply = function()
      local ok, e = source:xo("Add-DistributionGroupMember", { Identity = scope.identity,
                                                              Member = u.ExchangeGuid or u.PrimarySmtpAddress })
      if ok or C.exo_code(e) == "MemberAlreadyExistsException" then return true end
      return nil, e
    end }
  if err == "planned" then return "planned" end
  if err then return nil, err end
  scope.members[lower(u.PrimarySmtpAddress)] = true
  return "added"
end

---------------------------------------------------------------------------------------------
-- Whole runs: one row per user, concurrently (each tenant's Exchange calls are limited by its
-- client, t2t.connect), with progress.

local function row_of(m, extra)
  local u = m.user
  local r = { source = u.PrimarySmtpAddress or u.missing, target = m.target and m.target.PrimarySmtpAddress or u.TargetUser,
              line = u.line, changes = {}, problems = {}, warnings = {}, status = "ok", outside = u.InScope == false }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

local function fail(r, p)
  r.status = "failed"
  r.problems[#r.problems + 1] = type(p) == "table" and p.message and p or C.problem("Error", tostring(p))
  return r
end

local function each(items, fn, o, base)
  local bar = o.progress
  return t2t.parallel(items, fn, { concurrency = o.concurrency or 16, on_progress = bar and function(done)
    bar:update((base or 0) + done)
  end })
end

-- A users source: a list of records, or {each = function(fn) -> true | nil, err} calling fn(u, i)
-- for every user (a collection file read line by line: see M.file_users).
local function source_of(users)
  if type(users.each) == "function" then return users end
  return { each = function(fn)
    for i, u in ipairs(users) do fn(u, i) end
    return true
  end }
end

-- file_users(path [, keep]) -> a users source reading a collection file; keep(u) -> bool filters.
function M.file_users(path, keep)
  return { each = function(fn)
    local info, nxt = collection.open(path)
    if not info then return nil, nxt end
    local i = 0
    while true do
      local u, err = nxt()
      if err then return nil, err end
      if not u then return true end
      if not keep or keep(u) then
        i = i + 1
        fn(u, i)
      end
    end
  end }
end

M.WINDOW = 500

-- in_windows(src, o, work(u, i) -> row, prepass(u, i), start(n)) -> rows | nil, err: one pass
-- over src for prepass (what must be known of every user first: collisions, delegates), then
-- start(n), then work on the users M.WINDOW at a time (concurrently within one), so only a
-- window's records are held at once.
local function in_windows(src, o, work, prepass, start)
  local n = 0
  local ok, err = src.each(function(u, i)
    n = n + 1
    prepass(u, i)
  end)
  if not ok then return nil, err end
  start(n)
  local rows, window = {}, {}
  local function flush()
    local results = each(window, function(x) return work(x.u, x.i) end, o, #rows)
    for k, res in ipairs(results) do
      rows[#rows + 1] = res.ok and res.value or fail(row_of({ user = window[k].u }), res.err)
    end
    window = {}
  end
  ok, err = src.each(function(u, i)
    window[#window + 1] = { u = u, i = i }
    if #window >= M.WINDOW then flush() end
  end)
  if not ok then return nil, err end
  flush()
  return rows
end

-- prepare_one(o, m) -> row: ensure, licence after the GUID, scope membership.
local function prepare_one(o, m)
  local r = row_of(m)
  if #m.problems > 0 then
    r.status, r.problems = "failed", m.problems
    return r
  end
  local res, err = ensure.ensure(o.target, m, o.rules, o)
  if not res then return fail(r, err) end
  for _, c in ipairs(res.changes) do r.changes[#r.changes + 1] = c end
  for _, w in ipairs(res.warnings) do r.warnings[#r.warnings + 1] = w end
  if res.status == "migrated" then r.status = "migrated" return r end
  local planned = res.status == "planned"
  local any_planned = planned
  for _, sku in ipairs(o.skus or {}) do
    local st, lerr = lic.assign(o.target, m, sku, { usage_location = o.usage_location, planned = planned,
                                                   settle = o.settle })
    if not st then return fail(r, lerr) end
    if st == "licensed" or st == "planned" then r.changes[#r.changes + 1] = "licence " .. sku.part end
    any_planned = any_planned or st == "planned"
  end
  if o.source and o.scope then
    local st, serr = M.add_to_scope(o.source, m.user, o.scope)
    if not st then return fail(r, serr) end
    if st == "added" or st == "planned" then r.changes[#r.changes + 1] = "added to the scope group" end
    any_planned = any_planned or st == "planned"
  end
  if #r.changes == 0 then r.changes[1] = "unchanged" end
  r.status = any_planned and "planned" or "ok"
  return r
end

-- prepare{target, source?, users, rules, skus?, scope?, replace_contacts, clear_previous,
-- usage_location, concurrency, progress, plan_mode, settle} -> rows (users' order).
-- users: a list of records or a users source (M.file_users); o.on_count(n) is told how many
-- there are before the work starts (for a progress bar).  -> rows | nil, err
function M.prepare(o)
  local col, clash = map.collider(o.rules), nil
  return in_windows(source_of(o.users), o, function(u, i)
    local m = map.map(u, o.rules)
    if clash[i] then table.insert(m.problems, clash[i]) end
    return prepare_one(o, m)
  end, function(u, i) col:add(u, i) end, function(n)
    clash, col = col:problems(), nil
    if o.on_count then o.on_count(n) end
  end)
end

---------------------------------------------------------------------------------------------
-- Validation.

-- The target object for u: the mapped address when there is one, else the one carrying the
-- source's LegacyExchangeDN as an X500 (what prepare-users stamps), else its ExchangeGuid.
local function find_target(t, u, m)
  local idents = {}
  if m and m.target then idents[1] = m.target.PrimarySmtpAddress end
  if u.LegacyExchangeDN then idents[#idents + 1] = "X500:" .. u.LegacyExchangeDN end
  if not C.is_zero(u.ExchangeGuid) then idents[#idents + 1] = u.ExchangeGuid end
  for _, id in ipairs(idents) do
    local mu, err = C.get_one(t, "Get-MailUser", { Identity = id })
    if err then return nil, err end
    if mu then return { mailuser = mu, identity = id } end
  end
  local other, err = C.get_one(t, "Get-Recipient", { Identity = idents[1] or u.PrimarySmtpAddress })
  if err then return nil, err end
  return { other = other, identity = idents[1] or u.PrimarySmtpAddress }
end

local function check_one(o, u, m)
  local target, err = find_target(o.target, u, m)
  if not target then return nil, err end
  if target.mailuser then
    target.user = C.get_one(o.target, "Get-User", { Identity = target.mailuser.Guid or target.mailuser.PrimarySmtpAddress })
  end
  return rules_mod.check(u, target, o.env), target
end

-- The fixes CSS offers, in one Set-MailUser through the plan (never on a dir-synced object).
local function apply_fixes(o, findings, target)
  local mu = target.mailuser
  local params = mu and not mu.IsDirSynced and rules_mod.merge(findings)
  if not params then return false end
  local before, after = {}, {}
  for k, v in pairs(params) do before[k] = mu[k] ~= nil and mu[k] or "(none)"; after[k] = v end
  if params.EmailAddresses then before.EmailAddresses = "(current)" end
  params.Identity = mu.Guid or mu.PrimarySmtpAddress
  local _, err = o.target.plan:change { kind = "update", target = fmt("mail user '%s' (%s)", tostring(mu.Name),
    tostring(mu.PrimarySmtpAddress)), tenant = o.target.name, operation = "validate_fix", before = before, after = after,
    note = "the fixes CSS-val offers", apply = function() return o.target:xo("Set-MailUser", params) end }
  if err and err ~= "planned" and err ~= "unchanged" then return nil, err end
  return err ~= "planned"
end

-- Test-MigrationServerAvailability for the user (§4.6): a finding when it fails.
local function test_move(o, mu, findings)
  local res, err = o.target:xo("Test-MigrationServerAvailability", { Endpoint = o.endpoint,
                                                                     TestMailbox = mu.PrimarySmtpAddress })
  local r = res and res[1]
  if r and r.Result == "Success" then return end
  findings[#findings + 1] = { rule = 18, id = "test-move", level = "error",
    message = "Test-MigrationServerAvailability failed: " .. tostring(r and (r.Message or r.ErrorDetail) or err),
    fix = "fix what it names, then test again", exception = r and r.ErrorDetail ~= "" and r.ErrorDetail or nil }
end

local function validate_one(o, u, m)
  local r = row_of(m or { user = u })
  if u.read_error then
    r.warnings[#r.warnings + 1] = "some source details could not be read: " .. u.read_error
  end
  local findings, target = check_one(o, u, m)
  if not findings then return fail(r, target) end
  if o.fix then
    local fixed, ferr = apply_fixes(o, findings, target)
    if fixed == nil then return fail(r, ferr) end
    if fixed then
      r.changes[#r.changes + 1] = "fixed"
      findings, target = check_one(o, u, m)
      if not findings then return fail(r, target) end
    end
  end
  if o.endpoint and target.mailuser then test_move(o, target.mailuser, findings) end
  r.findings = findings
  r.target = target.mailuser and target.mailuser.PrimarySmtpAddress or r.target
  for _, f in ipairs(findings) do
    local label = fmt("[%d %s] %s", f.rule, rules_mod.NAMES[f.rule] or f.id, f.message)
    if f.level == "error" then
      r.problems[#r.problems + 1] = C.problem(f.id, label, f.fix, { exception = f.exception })
    else
      r.warnings[#r.warnings + 1] = label .. (f.fix and (" -> " .. f.fix) or "")
    end
  end
  r.status = #r.problems > 0 and "not ready" or "ready"
  return r
end

-- A delegates index: every user's names -> its Batch, to warn about FullAccess / SendAs / Send
-- on Behalf delegates that are not in the list or are in another batch (§5.6: permissions work
-- only when both move together).  Names only, so it stays small.
local function delegate_index()
  local by = {}
  local ix = {}
  function ix.add(u)
    for _, k in ipairs { u.Name, u.PrimarySmtpAddress, u.UserPrincipalName, u.Alias } do
      if k then by[lower(k)] = u.Batch or "" end
    end
  end
  function ix.warnings(u)
    local out = {}
    for _, kind in ipairs { { "FullAccess", u.FullAccess }, { "SendAs", u.SendAs }, { "Send on Behalf", u.SendOnBehalf } } do
      for _, d in ipairs(C.list(kind[2])) do
        local batch = by[lower(d)]
        if not batch then
          out[#out + 1] = fmt("delegates split: %s has %s on this mailbox and is not in this list: move them together, " ..
                              "or the permission stops working (cross-tenant permissions are not supported)", d, kind[1])
        elseif batch ~= (u.Batch or "") then
          out[#out + 1] = fmt("delegates split: %s has %s on this mailbox but is in batch %s, this one in %s: put them " ..
                              "in one batch", d, kind[1], batch ~= "" and batch or "(none)", u.Batch or "(none)")
        end
      end
    end
    return out
  end
  return ix
end

-- validate{target, users (list or source), rules?, env = {accepted, tdd, scope_known,
-- scope_group}, fix, endpoint?, concurrency, progress, on_count} -> rows | nil, err.
function M.validate(o)
  local col, clash, ix = o.rules and map.collider(o.rules), {}, delegate_index()
  return in_windows(source_of(o.users), o, function(u, i)
    local m = o.rules and not clash[i] and map.map(u, o.rules)
    if m and #m.problems > 0 then m = nil end      -- no usable mapping: find the target by its X500
    local r = validate_one(o, u, m or { user = u })
    for _, w in ipairs(ix.warnings(u)) do r.warnings[#r.warnings + 1] = w end
    return r
  end, function(u, i)
    ix.add(u)
    if col then col:add(u, i) end
  end, function(n)
    clash, col = col and col:problems() or {}, nil
    if o.on_count then o.on_count(n) end
  end)
end

return M
