-- t2t.sim.exo.contacts: mail contacts.  GAL synchronisation between merging companies leaves a
-- contact in the target for each source mailbox; it holds the source address, so it collides with
-- the MailUser that replaces it (Microsoft's TargetObject.ps1 removes it first, ms-setup-and-prep.md
-- §3.1).
local U = require "t2t.sim.exo.util"
local pop = require "t2t.sim.population"
local R = require "t2t.sim.exo.recipients"

local M = {}
local CONTACT = U.set("MailContact")

local function present(r)
  return U.present(r, { Identity = r.Name, Id = r.Name, RecipientType = "MailContact" })
end

M["Get-MailContact"] = function(ctx, p)
  U.only_simulated("Get-MailContact", p, U.set("Identity", "Filter", "ANR", "ResultSize",
    "RecipientTypeDetails"))
  p.Anr, p.ANR = p.ANR, nil                 -- this cmdlet spells it ANR
  return R.get(ctx, p, CONTACT, present)
end

M["New-MailContact"] = function(ctx, p)
  U.only_simulated("New-MailContact", p, U.set("Name", "ExternalEmailAddress", "Alias",
    "DisplayName", "FirstName", "LastName", "PrimarySmtpAddress", "Confirm", "WhatIf"))
  if U.find(ctx, p.Name, nil, true) then
    U.fail(400, U.EX.AlreadyExists, "The name \"%s\" is already being used. Please try another name.", p.Name)
  end
  local ok, r = pcall(pop.create, ctx.sim, ctx.t, { kind = "MailContact", name = p.Name,
    alias = p.Alias, display_name = p.DisplayName or p.Name, first = p.FirstName,
    last = p.LastName, external = p.ExternalEmailAddress, primary = p.PrimarySmtpAddress })
  if not ok then
    if type(r) == "table" and r.population then
      U.fail(400, U.EX.ProxyExists, "%s", r.message)
    end
    error(r, 0)
  end
  return { present(r) }
end

M["Remove-MailContact"] = function(ctx, p)
  local r = U.find(ctx, p.Identity, CONTACT)
  if r.IsDirSynced then
    U.fail(400, U.EX.Task, "The action 'Remove-MailContact' can't be performed on the object '%s' " ..
      "because the object is being synchronized from your on-premises organization.", r.Name)
  end
  pop.remove(ctx.sim, ctx.t, r)
  return {}
end

return M
