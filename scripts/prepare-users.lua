-- prepare-users: the target MailUser of every mailbox that moves (ms-setup-and-prep.md §5),
-- from the source tenant or from the collection file export-users wrote.
local mailuser = require "t2t.mailuser"
local S = require "t2t.mailuser.session"

return runbook {
  name = "prepare-users",
  description = "Prepare TARGET mail users for the mailboxes that move (ms-setup-and-prep.md §5).\n\n" ..
    "For each source mailbox: read it (from the source tenant, or from the file export-users wrote for a target\n" ..
    "admin without source access: --from FILE); map it to its target (--domain-map contoso.com=fabrikam.com, or\n" ..
    "TargetUser in the CSV; two sources onto one target are reported, never overwritten); create or fix the\n" ..
    "target MailUser (ExchangeGuid, ArchiveGuid only when the source has an archive, x500:<LegacyExchangeDN> and\n" ..
    "every source X500, a proxy in the target delivery domain, ExternalEmailAddress set with PrimarySmtpAddress,\n" ..
    "no source-domain address); then --license SKU (only once the GUID is stamped: earlier, Exchange would\n" ..
    "provision a new mailbox); then add the source mailbox to the scope group (when the source is open).\n\n" ..
    "A dir-synced target is never edited: the result says what to set on-premises. A target that had a mailbox\n" ..
    "before is reported; --clear-previous-mailbox clears it (Set-User -PermanentlyClearPreviousMailboxInfo,\n" ..
    "IRREVERSIBLE: a soft-deleted mailbox of the user can no longer be recovered). A mail contact for the user\n" ..
    "(GAL sync) is removed only with --replace-contacts. Re-runs change nothing; --plan shows the changes;\n" ..
    "--report FILE (.csv or .json) keeps one row per user and --only-failed re-runs the ones not done.\n" ..
    "With --sim the source defaults to contoso and the target to fabrikam.",
  -- the target's mail users and licences; without --from, the source's mailboxes and scope
  -- group too (docs/roles.md)
  needs = {
    target = { exchange = { "Mail Recipient Creation", "Mail Recipients", "View-Only Configuration" },
               when = { license = { graph = { "LicenseAssignment.ReadWrite.All", "User.ReadWrite.All" } },
                        ["usage-location"] = { graph = { "User.ReadWrite.All" } } } },
    source = { exchange = { "View-Only Recipients", "View-Only Configuration", "Distribution Groups" } },
  },
  params = S.params("re-run", {
    { name = "license", type = "list", help = "licences to assign once the GUID is stamped: ctudm, skuPartNumbers or skuIds" },
    { name = "disable-plans", type = "list", help = "service plans of the --license SKUs to leave off (e.g. EXCHANGE_S_ENTERPRISE)" },
    { name = "usage-location", type = "string", help = "country code for users without one (a licence needs it)" },
    { name = "scope", type = "boolean", default = true, help = "add the source mailboxes to the scope group" },
    { name = "replace-contacts", type = "boolean", default = false, help = "remove a mail contact that stands for the user" },
    { name = "clear-previous-mailbox", type = "boolean", default = false,
      help = "Set-User -PermanentlyClearPreviousMailboxInfo where needed (IRREVERSIBLE)" },
  }),
  run = function(ctx, p)
    local r = S.load(ctx, p, "identity")
    local target, source, users, info, scope = r.target, r.source, r.users, r.info, r.scope
    if source and not scope and p.scope and p.from then scope = mailuser.scope(source, p.scope_group) end
    local skus, names = {}, {}
    if p.license then
      local err
      skus, err = mailuser.resolve_licenses(target, p.license, p.disable_plans)
      if not skus then ctx:fail("--license: %s", tostring(err)) end
      for i, s in ipairs(skus) do names[i] = s.part end
    elseif p.disable_plans then
      ctx:fail("--disable-plans goes with --license")
    end
    ctx:say("Preparing users: %s -> %s%s%s", tostring(info.source.name), target.name,
            #names > 0 and (", licences " .. table.concat(names, ", ")) or "", ctx.opts.plan and "   [plan: no changes]" or "")
    local o = { target = target, source = source, users = users, rules = r.rules, skus = skus,
      scope = p.scope and scope or nil, replace_contacts = p.replace_contacts,
      clear_previous = p.clear_previous_mailbox, usage_location = p.usage_location, concurrency = p.concurrency,
      plan_mode = ctx.opts.plan }
    o.on_count = S.on_count(ctx, "Preparing users", o)
    local rows, err = mailuser.prepare(o)
    if o.progress then o.progress:finish() end
    if not rows then ctx:fail("%s", tostring(err)) end
    for _, row in ipairs(S.missing_rows(r.failures)) do rows[#rows + 1] = row end
    local flat = S.finish(ctx, p, rows, r.kept, { planned = ctx.opts.plan })
    local n = {}
    for _, row in ipairs(rows) do n[row.status] = (n[row.status] or 0) + 1 end
    for _, st in ipairs { "ok", "planned", "migrated", "failed" } do
      if n[st] then ctx:summary("users " .. st, n[st]) end
    end
    if not source and not p.from then ctx:summary("scope group", "not changed (no source profile)") end
    local outside = 0
    for _, row in ipairs(rows) do if row.outside then outside = outside + 1 end end
    if p.from and not source and outside > 0 then
      ctx:say("\n%d of these mailboxes are not in the scope group %s: the source admin adds them (export-users " ..
              "--add-to-scope). Next: validate-users.", outside, tostring(info.scope_group or "(the organization relationship's)"))
    else
      ctx:say("\nNext: validate-users (every CSS-val rule, and Test-MigrationServerAvailability with --test-move).")
    end
    return { users = #rows, statuses = n, rows = flat }
  end,
}
