-- export-users: the source admin's half of user preparation (CSS-val -CollectSourceOnly,
-- ms-setup-and-prep.md §3.2): everything the target admin needs about the source mailboxes, in
-- one file, so they can prepare and validate without source access.
local mailuser = require "t2t.mailuser"
local S = require "t2t.mailuser.session"

local function on_hold(u)
  return u.LitigationHoldEnabled or u.DelayHoldApplied or u.DelayReleaseHoldApplied or u.ComplianceTagHoldApplied
      or (u.InPlaceHolds and #u.InPlaceHolds > 0) or (u.OrgHolds and #u.OrgHolds > 0)
end

return runbook {
  name = "export-users",
  description = "Export the SOURCE mailboxes for the target admin (CSS-val -CollectSourceOnly).\n\n" ..
    "Reads every attribute preparation and validation need -- ExchangeGuid, ArchiveGuid, LegacyExchangeDN, all\n" ..
    "X500/X400 and SMTP proxies, UPN, RecipientTypeDetails, holds of every kind (the organization-wide one from\n" ..
    "HoldTracking too), aux archives, dumpster size, SubstrateHolds items, scope-group membership, licence\n" ..
    "capabilities, FullAccess / SendAs / Send on Behalf delegates -- and writes them to --out (JSON lines, mode\n" ..
    "0600: it holds names and addresses). The target admin runs prepare-users --from FILE and validate-users\n" ..
    "--from FILE with it. Changes nothing, unless --add-to-scope: then the mailboxes not yet in the scope group\n" ..
    "are added to it (the target admin cannot). With --sim the source defaults to contoso.",
  -- the source's mailboxes and scope group (docs/roles.md)
  needs = {
    exchange = { "View-Only Recipients", "View-Only Configuration" },
    when = { ["add-to-scope"] = { exchange = { "Distribution Groups" } } },
  },
  params = {
    { name = "source", type = "string", help = "profile of the source tenant (default with --sim: contoso)" },
    { name = "csv", type = "file", help = "users: SourceUser[,TargetUser][,Batch] (as CSS-val) or EmailAddress" },
    { name = "group", type = "string", help = "users: the mailbox members of this group" },
    { name = "all", type = "boolean", default = false, help = "users: every user, shared, room and equipment mailbox" },
    { name = "out", type = "string", default = "t2t-users.jsonl", help = "the collection file to write" },
    { name = "scope-group", type = "string", help = "scope group (default: the organization relationship's)" },
    { name = "depth", type = "string", default = "full", help = "full (every attribute) or identity (GUIDs and addresses only: faster)" },
    { name = "add-to-scope", type = "boolean", default = false,
      help = "also add the exported mailboxes to the scope group (as SourceObject.ps1 does)" },
    { name = "concurrency", type = "integer", default = 16, help = "mailboxes read at once" },
  },
  run = function(ctx, p)
    if p.depth ~= "full" and p.depth ~= "identity" then ctx:usage("--depth is full or identity, not '%s'", p.depth) end
    ctx:output(p.out, "the collection file (--out)")
    local source = S.open(ctx, "source", p.source, true)
    ctx:say("Exporting from %s (%s), %s attributes", source.name, source.id, p.depth)
    local n = { users = 0, hold = 0, outside = 0, added = 0 }
    local function also(u, scope)
      if not p.add_to_scope then return end
      local st, serr = mailuser.add_to_scope(source, u, scope)
      if not st then u.read_error = "not added to the scope group: " .. tostring(serr)
      elseif st == "added" then u.InScope = true; n.added = n.added + 1 end
    end
    local function each(u)
      n.users = n.users + 1
      if on_hold(u) then n.hold = n.hold + 1 end
      if u.InScope == false then n.outside = n.outside + 1 end
      ctx:item(u.PrimarySmtpAddress, not u.read_error, u.read_error)
    end
    local failures = S.export(ctx, p, source, p.depth, p.out, { also = also, each = each, need_scope = p.add_to_scope })
    for _, r in ipairs(S.missing_rows(failures)) do ctx:item(r.source, false, r.problems[1].message) end
    ctx:summary("users exported", n.users)
    if #failures > 0 then ctx:summary("not found", #failures) end
    ctx:summary("on hold", n.hold)
    if p.add_to_scope then ctx:summary("added to the scope group", n.added) end
    ctx:summary("not in the scope group", n.outside)
    ctx:summary("file", p.out)
    ctx:say("\nWrote %s (%d users). Give it to the target admin: prepare-users --from %s, then validate-users --from %s.",
            p.out, n.users, p.out, p.out)
    return { users = n.users, file = p.out }
  end,
}
