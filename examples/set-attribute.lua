-- set-attribute: set CustomAttribute1 (or 2..15) on every mailbox in a group.
-- A worked example from docs/runbooks.md:
--   t2t run examples/set-attribute.lua --sim=state.json --group "Finance Team" --value FIN --plan
--   t2t run examples/set-attribute.lua --sim=state.json --group "Finance Team" --value FIN
--   t2t run examples/set-attribute.lua --sim=state.json --group "Finance Team" --value FIN   (no change)
return runbook {
  name = "set-attribute",
  description = "Set a custom attribute (CustomAttribute1..15) on every mailbox in a group.\n\n" ..
    "Reads the group's members and each mailbox's current value, and changes only the mailboxes whose\n" ..
    "value differs: a re-run changes nothing.  --plan shows the changes without making them.  Mailboxes\n" ..
    "synced from on-premises are skipped: their attributes are set there.",
  params = {
    { name = "group", type = "string", required = true, help = "the group: name, alias or address" },
    { name = "value", type = "string", required = true, help = "the value to set" },
    { name = "attribute", type = "integer", default = 1, min = 1, max = 15, help = "which CustomAttributeN" },
    { name = "tenant", type = "string", help = "tenant profile (default: --profile; with --sim: contoso)" },
  },
  run = function(ctx, p)
    local c = connect(p.tenant)
    local attr = "CustomAttribute" .. p.attribute

    -- read: the group's members (every page), then each mailbox as it is now
    local members, err = c.exo:invoke("Get-DistributionGroupMember", { Identity = p.group, ResultSize = "Unlimited" })
    if not members then ctx:fail("cannot read the members of group '%s': %s", p.group, tostring(err)) end
    local changed, same, skipped = 0, 0, 0
    for _, m in ipairs(members) do
      if not tostring(m.RecipientTypeDetails):find("Mailbox$") then
        ctx:say("  %s is a %s, not a mailbox: left alone", m.PrimarySmtpAddress, tostring(m.RecipientTypeDetails))
      else
        local rows, merr = c.exo:invoke("Get-Mailbox", { Identity = m.PrimarySmtpAddress })
        local mbx = rows and rows[1]
        if not mbx then
          ctx:item(m.PrimarySmtpAddress, false, "cannot read the mailbox: " .. tostring(merr))
        elseif mbx.IsDirSynced then
          skipped = skipped + 1
          ctx:say("  %s is synced from on-premises: set %s there", mbx.PrimarySmtpAddress, attr)
        else
          -- plan: an update with before/after; unchanged values are no change at all
          local before = mbx[attr] ~= nil and mbx[attr] or ""
          local ok, cerr = ctx.plan:change {
            kind = "update", target = string.format("mailbox '%s'", mbx.PrimarySmtpAddress),
            tenant = c.profile.name, operation = "Set-Mailbox",
            before = { [attr] = before }, after = { [attr] = p.value },
            apply = function() return c.exo:invoke("Set-Mailbox", { Identity = mbx.PrimarySmtpAddress, [attr] = p.value }) end,
          }
          if ok or cerr == "planned" then changed = changed + 1
          elseif cerr == "unchanged" then same = same + 1
          else ctx:item(mbx.PrimarySmtpAddress, false, tostring(cerr)) end
        end
      end
    end
    -- report
    ctx:summary("group", p.group)
    ctx:summary(ctx.opts.plan and ("would set " .. attr) or ("set " .. attr), changed)
    ctx:summary("already " .. p.value, same)
    ctx:summary("skipped (synced from on-premises)", skipped)
  end,
}
