-- t2t.mailuser.ensure: the target MailUser of one mapped source mailbox (ms-setup-and-prep.md
-- §5.1, §5.3, §5.5), ensure-style through the tenant's plan: read what the target holds for
-- the user's addresses and ExchangeGuid (one Get-Recipient), then create it (New-MailUser, then
-- one Set-MailUser with the GUIDs, proxies and UPN) or change only what differs on an existing
-- mail user.  A dir-synced target is never edited (the message says what to change
-- on-premises); a previous mailbox is reported, and cleared only with clear_previous (it is
-- irreversible); a mail contact in the way is removed only with replace_contacts (as
-- TargetObject.ps1 does); an object that is not ours is never overwritten.
local C = require "t2t.mailuser.common"

local M = {}
local lower, fmt = string.lower, string.format
local ZERO = C.ZERO

local function q(s) return (tostring(s):gsub("'", "''")) end

-- Everything in the target that holds the target address, the source address or the source's
-- ExchangeGuid: {at_target, by_guid, contact} | nil, err.
local function related(t, m)
  local u, tg = m.user, m.target
  local clauses = { fmt("(EmailAddresses -eq 'smtp:%s')", q(tg.PrimarySmtpAddress)),
                    fmt("(EmailAddresses -eq 'smtp:%s')", q(u.PrimarySmtpAddress)) }
  if not C.is_zero(u.ExchangeGuid) then clauses[3] = fmt("(ExchangeGuid -eq '%s')", u.ExchangeGuid) end
  local list, err = t:xo("Get-Recipient", { Filter = table.concat(clauses, " -or "), ResultSize = 20 })
  if not list then return nil, err end
  local r = {}
  local target, source = lower(tg.PrimarySmtpAddress), lower(u.PrimarySmtpAddress)
  for _, o in ipairs(list) do
    local holds_target = lower(o.PrimarySmtpAddress or "") == target or C.has(o.EmailAddresses, "smtp:" .. target)
    if holds_target then r.at_target = o end
    if C.guid_eq(o.ExchangeGuid, u.ExchangeGuid) then r.by_guid = o end
    if o.RecipientTypeDetails == "MailContact" and not holds_target and
       (lower(o.PrimarySmtpAddress or "") == source or C.has(o.EmailAddresses, "smtp:" .. source)) then
      r.contact = o
    end
  end
  return r
end

local function same(a, b) return a and b and (a.Guid or a.Name) == (b.Guid or b.Name) end

local function label(o)
  return fmt("%s '%s' (%s)", o.RecipientTypeDetails or "recipient", tostring(o.Name or o.Identity),
             tostring(o.PrimarySmtpAddress))
end

---------------------------------------------------------------------------------------------
-- What a mail user needs to change: desired (m.target) against current (a Get-MailUser object).

-- diff(m, cur, rules) -> params (Set-MailUser), before, after, problems.
function M.diff(m, cur, rules)
  local u, tg = m.user, m.target
  local params, before, after, problems = {}, {}, {}, {}
  local function set(field, param, value, shown_before, shown_after)
    params[param] = value
    before[field], after[field] = shown_before, shown_after
  end
  if not C.guid_eq(cur.ExchangeGuid, u.ExchangeGuid) then
    set("ExchangeGuid", "ExchangeGuid", u.ExchangeGuid, cur.ExchangeGuid or ZERO, u.ExchangeGuid)
  end
  if u.ArchiveGuid and not C.guid_eq(cur.ArchiveGuid, u.ArchiveGuid) then
    set("ArchiveGuid", "ArchiveGuid", u.ArchiveGuid, cur.ArchiveGuid or ZERO, u.ArchiveGuid)
  elseif not u.ArchiveGuid and not C.is_zero(cur.ArchiveGuid) then
    problems[#problems + 1] = C.problem("ArchiveWithoutSource", fmt("the target has an archive (ArchiveGuid " ..
      "%s) and the source has none", cur.ArchiveGuid), "remove the target's archive GUID before the move " ..
      "(the move fails with a target archive the source does not have)")
  end
  local adds, removes = {}, {}
  for _, p in ipairs(tg.add) do
    if not C.has(cur.EmailAddresses, p) then adds[#adds + 1] = p end
  end
  for _, p in ipairs(C.list(cur.EmailAddresses)) do
    if C.is_smtp(p) and next(rules.accepted) and not rules.accepted[C.domain_of(p)]
       and lower(C.address(p)) ~= lower(tg.PrimarySmtpAddress) then
      removes[#removes + 1] = p                 -- NotAcceptedDomainException otherwise (§7)
    end
  end
  if #adds > 0 or #removes > 0 then
    local v = {}
    if #adds > 0 then v.add = adds end
    if #removes > 0 then v.remove = removes end
    set("EmailAddresses", "EmailAddresses", v, { remove = #removes > 0 and removes or nil },
        { add = #adds > 0 and adds or nil })
  end
  local ext_ok = C.has(u.EmailAddresses, "smtp:" .. tostring(C.address(cur.ExternalEmailAddress)))
  if not ext_ok then
    set("ExternalEmailAddress", "ExternalEmailAddress", tg.ExternalEmailAddress,
        C.address(cur.ExternalEmailAddress), tg.ExternalEmailAddress)
  end
  -- ExternalEmailAddress alone would also change the primary address (§5.1): always together
  if not ext_ok or lower(cur.PrimarySmtpAddress or "") ~= lower(tg.PrimarySmtpAddress) then
    set("PrimarySmtpAddress", "PrimarySmtpAddress", tg.PrimarySmtpAddress, cur.PrimarySmtpAddress,
        tg.PrimarySmtpAddress)
  end
  if lower(cur.UserPrincipalName or "") ~= lower(tg.UserPrincipalName) then
    set("UserPrincipalName", "MicrosoftOnlineServicesID", tg.UserPrincipalName, cur.UserPrincipalName,
        tg.UserPrincipalName)
  end
  return params, before, after, problems
end

-- The on-premises changes for a dir-synced target (AD attribute names, §5.5): message, fix.
function M.onprem_text(m, params)
  local parts = {}
  if params.ExchangeGuid then parts[#parts + 1] = "msExchMailboxGuid = " .. params.ExchangeGuid end
  if params.ArchiveGuid then parts[#parts + 1] = "msExchArchiveGUID = " .. params.ArchiveGuid end
  local e = params.EmailAddresses
  if e and e.add then parts[#parts + 1] = "proxyAddresses += " .. table.concat(e.add, ", ") end
  if e and e.remove then parts[#parts + 1] = "proxyAddresses -= " .. table.concat(e.remove, ", ") end
  if params.ExternalEmailAddress then parts[#parts + 1] = "targetAddress = SMTP:" .. params.ExternalEmailAddress end
  if params.PrimarySmtpAddress then parts[#parts + 1] = "mail = " .. params.PrimarySmtpAddress end
  if params.MicrosoftOnlineServicesID then
    parts[#parts + 1] = "userPrincipalName = " .. params.MicrosoftOnlineServicesID
  end
  return fmt("%s is synchronised from on-premises (IsDirSynced), so Exchange Online cannot change it; it needs: %s",
             m.target.PrimarySmtpAddress, table.concat(parts, "; ")),
         "set those on the on-premises object, then run an Entra Connect delta sync (Start-ADSyncSyncCycle -PolicyType Delta)"
end

---------------------------------------------------------------------------------------------
-- Steps.

-- A previous mailbox (or another mailbox's ExchangeGuid) on the mail user (§5.3).
local function previous(t, m, cur, o, res)
  local user = C.get_one(t, "Get-User", { Identity = cur.Guid or cur.PrimarySmtpAddress })
  local prev = user and user.PreviousRecipientTypeDetails
  prev = prev and prev ~= "None" and prev ~= "" and prev or nil
  local foreign = not C.is_zero(cur.ExchangeGuid) and not C.guid_eq(cur.ExchangeGuid, m.user.ExchangeGuid)
  if not prev and not foreign then return true end
  local why = prev and fmt("was a %s before (PreviousRecipientTypeDetails)", prev) or
              fmt("carries another mailbox's ExchangeGuid %s", cur.ExchangeGuid)
  local cmd = fmt("Set-User %s -PermanentlyClearPreviousMailboxInfo", cur.PrimarySmtpAddress)
  if cur.IsDirSynced or not o.clear_previous then
    return nil, C.problem("PreviousMailbox", fmt("target %s %s", cur.PrimarySmtpAddress, why),
      fmt("run %s (IRREVERSIBLE: a soft-deleted mailbox of this user can no longer be recovered), or re-run " ..
          "with --clear-previous-mailbox", cmd))
  end
  local _, err = t.plan:change { kind = "action", target = fmt("clear previous mailbox of '%s'", cur.Name),
    tenant = t.name, operation = "clear_previous_mailbox",
    note = why .. "; " .. cmd .. " -- irreversible: a soft-deleted mailbox of this user can no longer be recovered",
    apply = function()
      return t:xo("Set-User", { Identity = cur.Guid or cur.PrimarySmtpAddress, PermanentlyClearPreviousMailboxInfo = true })
    end }
  if err and err ~= "planned" then return nil, err end
  res.changes[#res.changes + 1] = "previous mailbox cleared"
  cur.ExchangeGuid, cur.ArchiveGuid = ZERO, ZERO
  return true
end

-- Change what differs on mail user cur (fresh: just created, so it has no previous mailbox).
local function fix(t, m, cur, rules, o, res, fresh)
  if not fresh then
    local ok, perr = previous(t, m, cur, o, res)
    if not ok then return nil, perr end
  end
  local params, before, after, problems = M.diff(m, cur, rules)
  if problems[1] then return nil, problems[1] end
  if next(params) == nil then return true end
  if cur.IsDirSynced then return nil, C.problem("DirSynced", M.onprem_text(m, params)) end
  params.Identity = cur.Guid or cur.PrimarySmtpAddress
  local _, err = t.plan:change { kind = "update", target = fmt("mail user '%s' (%s)", cur.Name, m.target.PrimarySmtpAddress),
    tenant = t.name, operation = "ensure_mailuser", before = before, after = after,
    apply = function() return t:xo("Set-MailUser", params, { wait_visible = o.settle }) end }
  if err == "unchanged" then return true end
  if err and err ~= "planned" then return nil, err end
  for k in pairs(after) do res.changes[#res.changes + 1] = k end
  res.status = err == "planned" and "planned" or "updated"
  return true
end

-- A Name for a mail user whose alias another object already has as its Name: the alias and a
-- piece of the source's ExchangeGuid (stable, so a re-run picks the same one).
function M.unique_name(tg)
  return fmt("%s-%s", tg.Name, tostring(tg.ExchangeGuid or ""):sub(1, 8))
end

-- Create the mail user, then stamp it (one Set-MailUser).
local function create(t, m, rules, o, res)
  local tg = m.target
  local params = { Name = tg.Name, Alias = tg.Alias, DisplayName = tg.DisplayName,
                   ExternalEmailAddress = tg.ExternalEmailAddress, PrimarySmtpAddress = tg.PrimarySmtpAddress }
  -- New-MailUser answers the object it made: that answer is the read-back t:create wants (the
  -- Set-MailUser after it waits out replication lag itself); only a lost answer is looked for.
  local made
  local function find()
    if made then local obj = made; made = nil; return obj end
    return C.get_one(t, "Get-MailUser", { Identity = tg.PrimarySmtpAddress })
  end
  local obj, err = t:create({ target = fmt("mail user '%s' (%s)", tg.Name, tg.PrimarySmtpAddress), tenant = t.name,
    operation = "ensure_mailuser", after = params,
    apply = function()
      local l, e = t:xo("New-MailUser", params)
      -- a Name another object has (Name is unique in a tenant, and people share names): when
      -- nothing holds our address yet, the object is ours to make under a name of its own
      if not l and C.exo_code(e) == "ADObjectAlreadyExistsException" and params.Name == tg.Name
         and not C.get_one(t, "Get-Recipient", { Identity = tg.PrimarySmtpAddress }) then
        params.Name = M.unique_name(tg)
        l, e = t:xo("New-MailUser", params)
      end
      if l then made = l[1]; return l[1] or params end
      return nil, e
    end }, find)
  local planned = err == "planned"
  if not obj and not planned then return nil, err end
  res.changes[#res.changes + 1] = "created"
  local cur = planned and { ExchangeGuid = ZERO, ArchiveGuid = ZERO, EmailAddresses = { "SMTP:" .. tg.PrimarySmtpAddress },
                            ExternalEmailAddress = tg.ExternalEmailAddress, PrimarySmtpAddress = tg.PrimarySmtpAddress,
                            UserPrincipalName = tg.Alias .. "@" .. tostring(rules.target_initial), Name = tg.Name }
              or obj
  cur.Name = cur.Name or tg.Name
  local ok, ferr = fix(t, m, cur, rules, o, { changes = {} }, true)
  res.status = planned and "planned" or "created"
  if not ok then return nil, ferr end
  return true
end

-- ensure(t, m, rules, o) -> result | nil, problem.  o: {replace_contacts, clear_previous,
-- settle}.  result: {status = "created" | "updated" | "unchanged" | "migrated" | "planned",
-- changes = {...}, warnings = {...}}.
function M.ensure(t, m, rules, o)
  o = o or {}
  local res = { status = "unchanged", changes = {}, warnings = {} }
  local rel, err = related(t, m)
  if not rel then return nil, err end
  local at, byg = rel.at_target, rel.by_guid
  if byg and byg.RecipientTypeDetails == "UserMailbox" and (not at or same(at, byg)) then
    res.status = "migrated"                    -- the move completed: the target is its mailbox
    return res
  end
  if byg and not same(byg, at) then
    return nil, C.problem("GuidElsewhere", fmt("the source's ExchangeGuid %s is already on %s in the target, " ..
      "not on %s", m.user.ExchangeGuid, label(byg), m.target.PrimarySmtpAddress),
      fmt("if that is this user's target, give TargetUser = %s in the CSV; else remove the GUID from it",
          tostring(byg.PrimarySmtpAddress)))
  end
  if rel.contact then
    local ok, cerr = M.contact(t, rel.contact, m, o, res)
    if not ok then return nil, cerr end
  end
  if at and at.RecipientTypeDetails == "MailContact" then
    local ok, cerr = M.contact(t, at, m, o, res, true)
    if not ok then return nil, cerr end
    at = nil
  end
  if not at then
    local ok, cerr = create(t, m, rules, o, res)
    if not ok then return nil, cerr end
    return res
  end
  if at.RecipientTypeDetails ~= "MailUser" then return nil, M.taken(m, at) end
  local cur, gerr = C.get_one(t, "Get-MailUser", { Identity = at.Guid or at.PrimarySmtpAddress })
  if not cur then return nil, gerr or C.problem("TargetGone", "the target mail user disappeared while it was read") end
  local ok, ferr = fix(t, m, cur, rules, o, res)
  if not ok then return nil, ferr end
  return res
end

-- A target address held by something that is not a mail user.
function M.taken(m, at)
  if at.RecipientTypeDetails == "UserMailbox" then
    return C.problem("TargetIsMailbox", fmt("target %s already has a mailbox (%s): licensed before its " ..
      "ExchangeGuid was stamped?", m.target.PrimarySmtpAddress, tostring(at.Name)),
      "a cross-tenant move needs a MailUser: remove the user's Exchange licence, convert it to a mail user, " ..
      "run Set-User -PermanentlyClearPreviousMailboxInfo, then prepare-users again")
  end
  return C.problem("AddressTaken", fmt("%s is already used by %s", m.target.PrimarySmtpAddress, label(at)),
    "give this user another TargetUser in the CSV, or free the address")
end

-- A mail contact for the user (GAL synchronisation): removed with replace_contacts; otherwise a
-- warning (it holds the source address), or a problem when it holds the target address (blocking).
function M.contact(t, c, m, o, res, blocking)
  local what = fmt("mail contact '%s' (%s)", tostring(c.Name), tostring(c.PrimarySmtpAddress))
  if not o.replace_contacts then
    local msg = fmt("%s represents this user in the target (GAL synchronisation?)", what)
    if blocking then
      return nil, C.problem("ContactHoldsAddress", msg .. " and holds the target address",
        "re-run with --replace-contacts to remove it (as Microsoft's TargetObject.ps1 does)")
    end
    res.warnings[#res.warnings + 1] = msg .. ": --replace-contacts removes it, or the address book shows two entries"
    return true
  end
  local _, err = t.plan:change { kind = "delete", target = what, tenant = t.name, operation = "replace_contact",
    note = "replaced by the mail user " .. m.target.PrimarySmtpAddress,
    apply = function() return t:xo("Remove-MailContact", { Identity = c.Guid or c.PrimarySmtpAddress, Confirm = false }) end }
  if err and err ~= "planned" and not C.not_found(err) then return nil, err end
  res.changes[#res.changes + 1] = "contact removed"
  return true
end

return M
