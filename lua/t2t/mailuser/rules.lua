-- t2t.mailuser.rules: the 14 per-user checks of CSS-Exchange's CrossTenantMailboxMigrationValidation
-- (-CheckObjects, ms-setup-and-prep.md §3.2) with CSS's meaning, plus the §5 target rules it does
-- not check (previous mailbox, a target that is already a mailbox, a demoted archive, the target
-- delivery domain proxy).  Each finding says what is wrong, how to fix it, and which documented
-- failure the move would otherwise end in (§7-8).  The fixes CSS offers are returned as
-- Set-MailUser parameters; they are never offered for a dir-synced target.
local C = require "t2t.mailuser.common"

local M = {}
local lower, fmt = string.lower, string.format

M.NAMES = {
  [1] = "objects found", [2] = "aux archives <= 12", [3] = "cross-tenant licence", [4] = "no holds",
  [5] = "archive SubstrateHolds empty", [6] = "in the migration scope", [7] = "dumpster fits the target",
  [8] = "ExchangeGuid", [9] = "ArchiveGuid", [10] = "LegacyExchangeDN as X500", [11] = "primary SMTP accepted",
  [12] = "proxies accepted", [13] = "source X500s", [14] = "ExternalEmailAddress",
  -- ms-setup-and-prep.md §5 and §8, beyond CSS-val's fourteen
  [15] = "no previous mailbox", [16] = "no demoted archive", [17] = "target delivery domain proxy",
  [18] = "Test-MigrationServerAvailability",
}

local EX = {
  holds = "the move is blocked: EXCH-08 \"litigation hold enabled ... can't be migrated cross-tenant without being " ..
          "added to the exception list\"",
  scope = "MailboxNotInCrossTenantMigrationScopeException",
  guid = "MissingExchangeGuidException",
  archive = "EXCH-08 \"target object is either missing an ExchangeGuid or an ArchiveGuid value\"",
  domain = "NotAcceptedDomainException",
  licence = "CrossTenantMigrationWithoutLicensePermanentException",
  target = "EXCH-08 \"The target object isn't found\"",
  x500 = "the move won't proceed (Docs: LegacyExchangeDN X500 missing); replies to old mail bounce (NDR 5.1.1)",
  aux = "the move fails: more than 12 auxiliary archives are not supported",
  substrate = "the move fails on the archive (CSS-val: remove the SubstrateHolds items with MFCMapi)",
  dumpster = "the move may fail when the target's Recoverable Items quota fills up",
  demoted = "UserAlreadyHasDemotedArchiveException",
  mailbox = "the MailUser-to-Mailbox conversion fails (a second mailbox in the target)",
}

local function finding(list, rule, id, level, message, fix, exception, params)
  list[#list + 1] = { rule = rule, id = id, level = level, message = message, fix = fix,
                      exception = exception, params = params }
end

-- Holds CSS-val reports (§3.2 #4): flags, InPlaceHolds by prefix or a 32-character legacy id,
-- and the organization-wide one seen in HoldTracking.
local function holds(u, out)
  local function hold(what) finding(out, 4, "holds", "error", "the SOURCE mailbox is under " .. what ..
    ", which a cross-tenant move does not support",
    "remove the hold in the source (Purview / Set-Mailbox), or leave this user out of the migration", EX.holds) end
  if u.LitigationHoldEnabled then hold("Litigation Hold") end
  if u.DelayHoldApplied then hold("a delay hold (DelayHoldApplied)") end
  if u.DelayReleaseHoldApplied then hold("a delay release hold (DelayReleaseHoldApplied)") end
  if u.ComplianceTagHoldApplied then hold("a retention label (ComplianceTagHoldApplied)") end
  for _, h in ipairs(C.list(u.InPlaceHolds)) do
    local s = tostring(h)
    if s:match("^mbx") or s:match("^cld") or s:match("^UniH") or s:match("^skp") then
      hold("an In-Place hold (" .. s .. ")")
    elseif #s == 32 then
      hold("a legacy In-Place (eDiscovery) hold (" .. s .. ")")
    end
  end
  for _, h in ipairs(C.list(u.OrgHolds)) do hold("an organization-wide retention policy (" .. h .. ", HoldTracking)") end
end

-- The source-side checks (2-7), which need no target object.
local function source_checks(u, cur, env, out)
  if (u.AuxArchiveCount or 0) > 12 then
    finding(out, 2, "aux-archives", "error", fmt("the SOURCE mailbox has %d aux archives; at most 12 can move",
      u.AuxArchiveCount), "leave this user out, or reduce the auto-expanded archive before the move", EX.aux)
  end
  if u.RecipientTypeDetails == "UserMailbox" and not C.has(u.PersistedCapabilities, C.CTUDM_CAPABILITY)
     and not (cur and C.has(cur.PersistedCapabilities, C.CTUDM_CAPABILITY)) then
    finding(out, 3, "licence", "error", "neither the SOURCE mailbox nor the TARGET mail user has the Cross-Tenant " ..
      "User Data Migration licence (ExchangeT2TMbxMove)", "assign it on either side (prepare-users --license ctudm " ..
      "does it on the target after the ExchangeGuid)", EX.licence)
  end
  holds(u, out)
  if u.ArchiveGuid and (u.SubstrateHoldsItems or 0) > 0 then
    finding(out, 5, "substrate-holds", "error", fmt("the SOURCE archive has %d item(s) in Recoverable Items\\" ..
      "SubstrateHolds", u.SubstrateHoldsItems), "remove them (MFCMapi) before the move", EX.substrate)
  end
  if env.scope_known and u.InScope == false then
    finding(out, 6, "scope", "error", fmt("the SOURCE mailbox is NOT in the scope group %s (the source organization " ..
      "relationship's MailboxMovePublishedScopes)", tostring(env.scope_group)),
      "add it: prepare-users with the source profile does, or Add-DistributionGroupMember", EX.scope)
  end
  if u.DisabledArchiveGuid and not u.ArchiveGuid then
    finding(out, 16, "demoted-archive", "error", fmt("the SOURCE mailbox has a previously disabled archive (%s)",
      u.DisabledArchiveGuid), "Set-Mailbox -RemoveDisabledArchive (irreversible) or Enable-Mailbox -Archive, then " ..
      "prepare again", EX.demoted)
  end
  if cur and u.TotalDeletedItemSize then
    local quota = C.bytes(cur.RecoverableItemsQuota) or 30 * 1073741824
    if u.TotalDeletedItemSize > quota then
      finding(out, 7, "dumpster", "error", fmt("the SOURCE dumpster (%s) is bigger than the TARGET " ..
        "RecoverableItemsQuota (%s)", C.gb(u.TotalDeletedItemSize), C.gb(quota)),
        "raise the target quota (Set-MailUser -EnableLitigationHoldForMigration) or purge the source dumpster", EX.dumpster)
    end
  end
end

-- The target-side checks, in three parts; fixable(params) is nil for a dir-synced target.
-- Identity: the previous mailbox (15), ExchangeGuid (8), ArchiveGuid (9).
local function identity_checks(u, cur, tuser, out, fixable)
  local prev = tuser and tuser.PreviousRecipientTypeDetails
  if prev and prev ~= "None" and prev ~= "" then
    finding(out, 15, "previous-mailbox", "error", fmt("the TARGET was a %s before (PreviousRecipientTypeDetails)", prev),
      fmt("Set-User %s -PermanentlyClearPreviousMailboxInfo (IRREVERSIBLE), or prepare-users --clear-previous-mailbox",
          tostring(cur.PrimarySmtpAddress)), EX.guid)
  end
  if not C.guid_eq(cur.ExchangeGuid, u.ExchangeGuid) then
    finding(out, 8, "exchange-guid", "error", fmt("ExchangeGuid mismatch: expected %s, the TARGET has %s",
      tostring(u.ExchangeGuid), tostring(cur.ExchangeGuid)), "Set-MailUser -ExchangeGuid " .. tostring(u.ExchangeGuid),
      EX.guid, fixable { ExchangeGuid = u.ExchangeGuid })
  end
  if not u.ArchiveGuid and not C.is_zero(cur.ArchiveGuid) then
    finding(out, 9, "archive-guid", "error", fmt("the TARGET has an archive (%s) and the SOURCE has none", cur.ArchiveGuid),
      "remove the archive GUID from the target mail user", EX.archive)
  elseif u.ArchiveGuid and not C.guid_eq(cur.ArchiveGuid, u.ArchiveGuid) then
    finding(out, 9, "archive-guid", "error", fmt("ArchiveGuid mismatch: expected %s, the TARGET has %s", u.ArchiveGuid,
      tostring(cur.ArchiveGuid)), "Set-MailUser -ArchiveGuid " .. u.ArchiveGuid, EX.archive,
      fixable { ArchiveGuid = u.ArchiveGuid })
  end
end

-- Proxies: the LegacyExchangeDN X500 (10), every source X500 (13), the target delivery domain (17).
local function x500_checks(u, cur, env, out, fixable)
  local x500 = "X500:" .. tostring(u.LegacyExchangeDN)
  if not C.has(cur.EmailAddresses, x500) then
    finding(out, 10, "x500-legdn", "error", "the source LegacyExchangeDN is not an X500 proxy of the TARGET: " ..
      tostring(u.LegacyExchangeDN), "Set-MailUser -EmailAddresses @{add=\"" .. x500 .. "\"}", EX.x500,
      fixable { EmailAddresses = { add = { x500 } } })
  end
  for _, p in ipairs(C.list(u.EmailAddresses)) do
    if C.is_x500(p) and lower(p) ~= lower(x500) and not C.has(cur.EmailAddresses, p) then
      finding(out, 13, "x500-all", "warning", fmt("the source proxy %s is not on the TARGET", p),
        "Set-MailUser -EmailAddresses @{add=\"" .. p .. "\"}", "replies to old mail addressed with it bounce (NDR 5.1.1)",
        fixable { EmailAddresses = { add = { p } } })
    end
  end
  if env.tdd and env.tdd ~= "" then
    for _, p in ipairs(C.list(cur.EmailAddresses)) do
      if C.is_smtp(p) and C.domain_of(p) == env.tdd then return end
    end
    local add = "smtp:" .. tostring(cur.Alias or "alias") .. "@" .. env.tdd
    finding(out, 17, "tdd-proxy", "error", fmt("the TARGET has no address in the target delivery domain %s", env.tdd),
      "Set-MailUser -EmailAddresses @{add=\"" .. add .. "\"}",
      "the source mail user gets no forwarding address after the move (Docs FAQ)",
      fixable { EmailAddresses = { add = { add } } })
  end
end

-- Domains and routing: the primary address (11) and every SMTP proxy (12) in accepted domains,
-- the ExternalEmailAddress one of the source's addresses (14).
local function domain_checks(u, cur, env, out, fixable)
  if not env.accepted[C.domain_of(cur.PrimarySmtpAddress) or ""] then
    local upn_ok = env.accepted[C.domain_of(cur.UserPrincipalName) or ""]
    finding(out, 11, "primary-domain", "error", fmt("the TARGET primary address %s is not in an accepted domain",
      tostring(cur.PrimarySmtpAddress)), upn_ok and ("set it to the UPN: Set-MailUser -PrimarySmtpAddress " ..
      tostring(cur.UserPrincipalName)) or "set a primary address in an accepted domain", EX.domain,
      upn_ok and fixable { PrimarySmtpAddress = cur.UserPrincipalName } or nil)
  end
  for _, p in ipairs(C.list(cur.EmailAddresses)) do
    if C.is_smtp(p) and not env.accepted[C.domain_of(p) or ""] and lower(C.address(p)) ~= lower(cur.PrimarySmtpAddress or "") then
      finding(out, 12, "proxy-domains", "error", fmt("%s on the TARGET is not in an accepted domain (not part of the " ..
        "organization)", p), "Set-MailUser -EmailAddresses @{remove=\"" .. p .. "\"}", EX.domain,
        fixable { EmailAddresses = { remove = { p } } })
    end
  end
  local ext = C.address(cur.ExternalEmailAddress)
  if not (ext and C.has(u.EmailAddresses, "smtp:" .. ext)) then
    finding(out, 14, "external-address", "error", fmt("the TARGET ExternalEmailAddress %s is not one of the source " ..
      "mailbox's addresses", tostring(cur.ExternalEmailAddress)), "Set-MailUser -ExternalEmailAddress " ..
      tostring(u.PrimarySmtpAddress) .. " -PrimarySmtpAddress " .. tostring(cur.PrimarySmtpAddress),
      "the move cannot find the source mailbox", fixable { ExternalEmailAddress = u.PrimarySmtpAddress,
      PrimarySmtpAddress = cur.PrimarySmtpAddress })
  end
end

-- The target-side checks on mail user cur (Get-User tuser); a dir-synced target gets no fix
-- but on-premises advice.
local function target_checks(u, cur, tuser, env, out)
  local synced = cur.IsDirSynced == true
  local function fixable(params) return not synced and params or nil end
  identity_checks(u, cur, tuser, out, fixable)
  x500_checks(u, cur, env, out, fixable)
  domain_checks(u, cur, env, out, fixable)
  if synced then
    for _, f in ipairs(out) do
      if f.level == "error" and f.rule >= 8 and f.rule ~= 16 then
        f.fix = "on-premises (the object is dir-synced): " .. f.fix .. "; then an Entra Connect delta sync"
      end
    end
  end
end

-- check(u, target, env) -> findings.  u: the source record (t2t.mailuser.export); target =
-- {mailuser = Get-MailUser object | nil, user = Get-User object, other = a non-mail-user holding
-- the address}; env = {accepted = {domain = true}, tdd, scope_known, scope_group}.
function M.check(u, target, env)
  local out = {}
  if u.missing then
    finding(out, 1, "found", "error", fmt("%s wasn't found on the SOURCE tenant", u.missing),
      "check the identity in the list", EX.target)
    return out
  end
  local cur = target.mailuser
  if not cur then
    if target.other and target.other.RecipientTypeDetails == "UserMailbox" and C.guid_eq(target.other.ExchangeGuid, u.ExchangeGuid) then
      return out                         -- already migrated: its mailbox is in the target now
    end
    finding(out, 1, "found", "error", fmt("%s wasn't found on the TARGET tenant as a mail user%s", target.identity or "?",
      target.other and (" (it is a " .. tostring(target.other.RecipientTypeDetails) .. ")") or ""),
      target.other and target.other.RecipientTypeDetails == "UserMailbox" and
      "a mailbox cannot receive the move; see prepare-users' advice for a target that is a mailbox" or
      "run prepare-users first", target.other and EX.mailbox or EX.target)
    return out                           -- CSS-val stops there too
  end
  source_checks(u, cur, env, out)
  target_checks(u, cur, target.user, env, out)
  table.sort(out, function(a, b) return a.rule < b.rule end)
  return out
end

-- merge(findings) -> one Set-MailUser parameter table with every offered fix (add/remove
-- proxies merged), or nil when nothing is fixable.
function M.merge(findings)
  local p, any = {}, false
  for _, f in ipairs(findings) do
    if f.params then
      any = true
      for k, v in pairs(f.params) do
        if k == "EmailAddresses" then
          p.EmailAddresses = p.EmailAddresses or {}
          for op, list in pairs(v) do
            local l = p.EmailAddresses[op] or {}
            for _, x in ipairs(list) do l[#l + 1] = x end
            p.EmailAddresses[op] = l
          end
        else
          p[k] = v
        end
      end
    end
  end
  return any and p or nil
end

return M
