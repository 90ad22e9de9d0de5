-- missing-x500: find the target MailUsers that lack the x500 address of their source mailbox.
-- A worked example from docs/runbooks.md:
--   t2t run examples/missing-x500.lua --sim=state.json --source contoso --target fabrikam
--   t2t run examples/missing-x500.lua --sim=state.json --source contoso --target fabrikam --fix --plan
--   t2t run examples/missing-x500.lua --sim=state.json --source contoso --target fabrikam --fix
local function lower(s) return tostring(s):lower() end

local ZERO_GUID = "00000000-0000-0000-0000-000000000000"

-- The source mailboxes by ExchangeGuid: what a target MailUser is matched on.
local function source_mailboxes(ctx, src)
  local rows, err = src.exo:invoke("Get-Mailbox", { ResultSize = "Unlimited" })
  if not rows then ctx:fail("cannot read the source mailboxes: %s", tostring(err)) end
  local by_guid = {}
  for _, m in ipairs(rows) do
    if m.ExchangeGuid then by_guid[lower(m.ExchangeGuid)] = m end
  end
  return by_guid, #rows
end

local function has_address(mu, address)
  for _, a in ipairs(mu.EmailAddresses or {}) do
    if lower(a) == lower(address) then return true end
  end
  return false
end

-- Add the x500 to one MailUser through the plan (--plan shows it, --audit records it).
local function add_x500(ctx, tgt, mu, x500)
  return ctx.plan:change {
    kind = "add", target = string.format("x500 address on mail user '%s'", mu.PrimarySmtpAddress),
    tenant = tgt.profile.name, operation = "Set-MailUser", after = { EmailAddresses = x500 },
    apply = function()
      return tgt.exo:invoke("Set-MailUser", { Identity = mu.PrimarySmtpAddress, EmailAddresses = { Add = { x500 } } })
    end,
  }
end

return runbook {
  name = "missing-x500",
  description = "Find target MailUsers that lack the x500 address of their source mailbox (and add it).\n\n" ..
    "A target MailUser belongs to the source mailbox with the same ExchangeGuid; it needs\n" ..
    "x500:<the source's LegacyExchangeDN> so replies to old mail and cached addresses still reach the\n" ..
    "user after the move.  Each MailUser is one item: exit 3 when some lack it.  --fix adds what is\n" ..
    "missing (through the plan: --plan shows it first); a re-run then finds nothing to do.",
  params = {
    { name = "source", type = "string", required = true, help = "profile of the source tenant (with --sim: contoso)" },
    { name = "target", type = "string", required = true, help = "profile of the target tenant (with --sim: fabrikam)" },
    { name = "fix", type = "boolean", default = false, help = "add the missing x500 addresses" },
  },
  run = function(ctx, p)
    local src, tgt = connect(p.source), connect(p.target)
    local by_guid, nsource = source_mailboxes(ctx, src)
    local users, err = tgt.exo:invoke("Get-MailUser", { ResultSize = "Unlimited" })
    if not users then ctx:fail("cannot read the target mail users: %s", tostring(err)) end
    local unmatched, added, planned = 0, 0, 0
    for _, mu in ipairs(users) do
      local m = mu.ExchangeGuid and mu.ExchangeGuid ~= ZERO_GUID and by_guid[lower(mu.ExchangeGuid)]
      if not m then
        unmatched = unmatched + 1
      else
        local x500 = "x500:" .. m.LegacyExchangeDN
        if has_address(mu, x500) then
          ctx:item(mu.PrimarySmtpAddress, true)
        elseif not p.fix then
          ctx:say("  %s lacks %s", mu.PrimarySmtpAddress, x500)
          ctx:item(mu.PrimarySmtpAddress, false, "lacks the x500 of " .. m.PrimarySmtpAddress .. " (--fix adds it)")
        else
          local ok, cerr = add_x500(ctx, tgt, mu, x500)
          if ok then added = added + 1; ctx:item(mu.PrimarySmtpAddress, true)
          elseif cerr == "planned" then planned = planned + 1
          else ctx:item(mu.PrimarySmtpAddress, false, tostring(cerr)) end
        end
      end
    end
    ctx:summary("source mailboxes", nsource)
    ctx:summary("target mail users", #users)
    ctx:summary("not from this source", unmatched)
    if p.fix then ctx:summary(ctx.opts.plan and "x500 to add" or "x500 added", ctx.opts.plan and planned or added) end
  end,
}
