-- t2t.batch.fixes: what each documented migration failure means and how it is fixed
-- (ms-setup-and-prep.md §8, the "Migration Failures" table, with the §7 causes behind the
-- generic MigrationPermanentException texts), the command that applies the fix, and whether
-- batch-fix may apply it unasked (auto), only with a flag (flag = the flag), or not at all.
local M = {}
local fmt = string.format

M.CATALOG = {
  MailboxNotInCrossTenantMigrationScopeException = { action = "scope", auto = true,
    cause = "the source mailbox is not in the scope group the source organization relationship publishes",
    fix = "add the source mailbox to the scope group (Add-DistributionGroupMember), then resume the batch" },
  AuxArchiveNotFoundInTargetRecipientException = { action = "scope_resubmit", auto = true,
    cause = "the user was out of scope when the batch started and has an auxiliary archive",
    fix = "add it to the scope group, remove the user (Remove-MigrationUser) and add it to a new batch" },
  MailboxIsNotInExpectedDBException = { action = "resubmit", auto = true,
    cause = "Microsoft's internal maintenance moved the source mailbox",
    fix = "remove the user and add it to a new batch" },
  NotAcceptedDomainException = { action = "proxies", auto = true,
    cause = "the target mail user has a proxy address outside the target's accepted domains (a source domain?)",
    fix = "remove that proxy (Set-MailUser -EmailAddresses @{remove=\"smtp:...\"}), then resume" },
  SourceAuxArchiveIsProvisionedDuringCrossTenantMovePermanentException = { action = "resubmit", auto = true,
    cause = "a new auxiliary archive was provisioned in the source during the move",
    fix = "remove the user and add it to a new batch" },
  UserDuplicateInOtherBatchException = { action = "duplicate", auto = true,
    cause = "the user is already in another migration batch",
    fix = "remove the user and add it to a new batch (t2t leaves it where it is moving, or takes it out of " ..
          "the batch where it is not)" },
  MissingExchangeGuidException = { action = "guid", auto = true,
    cause = "the target's ExchangeGuid is missing or not the source mailbox's",
    fix = "Set-MailUser <user> -ExchangeGuid <source ExchangeGuid>, then resume" },
  MissingArchiveGuidException = { action = "archive_guid", auto = true,
    cause = "the target's ArchiveGuid is missing or not the source archive's (EXCH-08)",
    fix = "Set-MailUser <user> -ArchiveGuid <source ArchiveGuid>, then resume" },
  MissingLegacyExchangeDNProxyException = { action = "x500", auto = true,
    cause = "the target lacks the source's LegacyExchangeDN as an X500 proxy",
    fix = "Set-MailUser <user> -EmailAddresses @{add=\"x500:<LegacyExchangeDN>\"}, then resume" },
  SourceMailboxAlreadyBeingMovedPermanentException = { action = "resubmit", auto = true,
    cause = "a move request already exists for the source mailbox (possibly Microsoft's own)",
    fix = "wait until that move ends, then remove the user and add it to a new batch" },
  UserAlreadyHasDemotedArchiveException = { action = "demoted", auto = "flag",
    flag = "--remove-disabled-archive (IRREVERSIBLE) or --enable-archive",
    cause = "the source mailbox has a previously disabled (demoted) archive",
    fix = "Set-Mailbox <source> -RemoveDisabledArchive (irreversible), or Enable-Mailbox <source> -Archive and " ..
          "then the target's ArchiveGuid; resume" },
  CrossTenantMigrationWithoutLicensePermanentException = { action = "license", auto = true,
    cause = "no Cross Tenant User Data Migration licence on the source or the target user",
    fix = "assign the licence (to the target, once its ExchangeGuid is stamped), then resume" },
  NeedsApproval = { action = "approve", auto = "flag",
    flag = "--approve-skipped, or --bad-item-limit N / --large-item-limit N",
    cause = "items were skipped (Data Consistency Score Investigate): the user completes only once approved",
    fix = "review the skipped items (Get-MigrationUserStatistics -IncludeSkippedItems), then approve them " ..
          "(Set-MigrationUser -ApproveSkippedItems)" },
  Stalled = { action = "wait", auto = false,
    cause = "the service paused the move (the StatusDetail names the reason: disk latency, CPU, MDB availability)",
    fix = "nothing to do: the move goes on by itself; if it stays stalled for hours, check the service health" },
}

-- The §7 causes a MigrationPermanentException text names.
local GENERIC = {
  { "on hold", { key = "source on hold", action = "manual", auto = false,
    cause = "the source mailbox is on hold (litigation, in-place, delay or an organization-wide policy)",
    fix = "holds block cross-tenant moves: release the hold (a compliance decision) or add the mailbox to the " ..
          "policy's exception list, then resume" } },
  { "more than 12 auxiliary", { key = "more than 12 aux archives", action = "manual", auto = false,
    cause = "the source has more than 12 auxiliary archives (the supported maximum)",
    fix = "reduce the archive, or leave this mailbox out of the cross-tenant move" } },
  { "No valid migration endpoints", { key = "no endpoint", action = "manual", auto = false,
    cause = "the batch's migration endpoint is missing or not cross-tenant (EXCH-07)",
    fix = "t2t run setup-target (it makes the endpoint), then resume" } },
  { "Tenant authorization error", { key = "tenants not authorized", action = "manual", auto = false,
    cause = "the source organization relationship does not allow moves to this target (MIGR-001)",
    fix = "t2t run setup-source, then t2t run verify-setup; then resume" } },
  { "isn't found", { key = "no target mail user", action = "manual", auto = false,
    cause = "the target mail user does not exist",
    fix = "t2t run prepare-users for this user, then remove it and add it to a new batch" } },
  { "already a mailbox", { key = "target is a mailbox", action = "manual", auto = false,
    cause = "the target object is a mailbox already (migrated before, or licensed before its ExchangeGuid was stamped)",
    fix = "if it was licensed too early, remove the licence and the mailbox with Microsoft Support; if it " ..
          "already moved, take it out of the batch (post-migration checks it)" } },
}

-- key(exception, text) -> how failures are grouped: the exception, and for the generic
-- MigrationPermanentException the cause its text names ("MigrationPermanentException: source on hold").
function M.key(exn, text)
  if M.CATALOG[exn or ""] or not text then return exn end
  for _, g in ipairs(GENERIC) do
    if text:find(g[1], 1, true) then return (exn or "MigrationPermanentException") .. ": " .. g[2].key end
  end
  return exn
end

-- info(exception, text) -> the catalogue entry (exception, cause, fix, action, auto, flag).
function M.info(exn, text)
  local e = M.CATALOG[exn or ""]
  local head, key = tostring(exn or ""):match("^(%w+Exception): (.+)$")     -- a key from M.key
  if head then
    exn = head
    for _, g in ipairs(GENERIC) do if g[2].key == key then e = g[2] end end
  end
  if not e and text then
    for _, g in ipairs(GENERIC) do
      if text:find(g[1], 1, true) then e = g[2] break end
    end
  end
  e = e or { action = "manual", auto = false, cause = text or "the service gave no detail",
             fix = "read the user's report (Get-MigrationUserStatistics -IncludeReport) and act on it" }
  local out = { exception = exn }
  for k, v in pairs(e) do out[k] = v end
  return out
end

-- command(batch, info) -> the t2t command that applies the fix (or nil: nothing to run).
function M.command(batch, info)
  if info.auto == true then return fmt("t2t run batch-fix --batch %s", batch) end
  if info.action == "demoted" then return fmt("t2t run batch-fix --batch %s --enable-archive", batch) end
  if info.action == "approve" then return fmt("t2t run batch-complete --batch %s --approve-skipped", batch) end
  return nil
end

return M
