-- sim-mailusers: give the simulator's target tenant three MailUsers for the first three source
-- mailboxes (ExchangeGuid stamped, only the first one with its x500), so examples/missing-x500.lua
-- has something to find.  A plain script, not a runbook (docs/runbooks.md, the second example):
--   t2t --sim=state.json examples/sim-mailusers.lua
-- Preparing MailUsers for real is what the prepare-users runbook does (every x500 included);
-- this stand-in leaves two without, on purpose.
local src, tgt = connect("contoso"), connect("fabrikam")
local mailboxes = assert(src.exo:invoke("Get-Mailbox", { ResultSize = 3 }))
for i, m in ipairs(mailboxes) do
  local address = m.Alias .. "@" .. tgt.profile.domain
  if assert(tgt.exo:invoke("Get-Recipient", { Filter = "Alias -eq '" .. m.Alias .. "'" }))[1] then
    print("mail user " .. address .. " exists already")
  else
    assert(tgt.exo:invoke("New-MailUser", { Name = m.Alias, ExternalEmailAddress = m.PrimarySmtpAddress,
                                            PrimarySmtpAddress = address }))
    local set = { Identity = address, ExchangeGuid = m.ExchangeGuid }
    if i == 1 then set.EmailAddresses = { Add = { "x500:" .. m.LegacyExchangeDN } } end
    assert(tgt.exo:invoke("Set-MailUser", set))
    print("mail user " .. address .. (i == 1 and " (with its x500)" or " (without its x500)"))
  end
end
