-- t2t.sim.exo.groups: distribution groups and mail-enabled security groups (-Type Security),
-- the migration scope of ms-setup-and-prep.md §4.5.  Membership lives in the directory
-- (tenant.dir.members, keyed by Entra object ids) so Graph and Exchange agree.
local model = require "t2t.sim.model"
local U = require "t2t.sim.exo.util"

local M = {}
local lower = string.lower

local function present(g)
  return U.present(g, { Identity = g.Identity or g.Name, Id = g.Name,
                        GroupType = g.RecipientTypeDetails == "MailUniversalSecurityGroup"
                          and "Universal, SecurityEnabled" or "Universal" })
end

M["Get-DistributionGroup"] = function(ctx, p)
  if p.Identity ~= nil then return { U.find(ctx, p.Identity, U.GROUP) }, present end
  local list = U.all(ctx, U.GROUP)
  if p.Filter then
    local pred, out = U.compile_filter(p.Filter), {}
    for _, g in ipairs(list) do if pred(g) then out[#out + 1] = g end end
    list = out
  end
  if p.Anr then list = U.anr(list, p.Anr) end
  return list, present
end

local accepted = U.accepted

local function add_member(ctx, g, ident)
  local m = U.find(ctx, ident)
  local set = ctx.t.dir.members[g.ExternalDirectoryObjectId]
  if set and set[m.ExternalDirectoryObjectId] then
    U.fail(400, "Microsoft.Exchange.Management.Tasks.MemberAlreadyExistsException",
      "The recipient \"%s\" is already a member of the group \"%s\".", m.Name, g.Name)
  end
  model.add_member(ctx.t, g.ExternalDirectoryObjectId, m.ExternalDirectoryObjectId)
end

M["New-DistributionGroup"] = function(ctx, p)
  local t = ctx.t
  if model.find_recipient(t, p.Name) then
    U.fail(400, U.EX.AlreadyExists, "The name \"%s\" is already being used. Please try another name.",
           p.Name)
  end
  local alias = p.Alias or p.Name:gsub("[^%w%.%-_]", "")
  local sec = p.Type == "Security"
  local initial = alias .. "@" .. t.initial_domain
  local primary = p.PrimarySmtpAddress or initial
  if not accepted(ctx, primary) then
    U.fail(400, U.EX.Validation, "The domain of '%s' isn't an accepted domain for your organization.",
           primary)
  end
  local addrs = { "SMTP:" .. primary }
  if lower(primary) ~= lower(initial) then addrs[2] = "smtp:" .. initial end
  for _, a in ipairs(addrs) do
    local other = model.find_recipient(t, a:sub(6))
    if other then
      U.fail(400, U.EX.ProxyExists, "The proxy address \"%s\" is already being used by the " ..
        "proxy addresses or LegacyExchangeDN of \"%s\". Please choose another proxy address.",
        a, other.Name)
    end
  end
  local id = ctx.sim.rng:guid()
  local kind = sec and "MailUniversalSecurityGroup" or "MailUniversalDistributionGroup"
  model.add_object(ctx.state, t, {
    ["@odata.type"] = "#microsoft.graph.group", id = id, displayName = p.DisplayName or p.Name,
    mail = primary, mailEnabled = true, securityEnabled = sec, mailNickname = alias,
    groupTypes = {}, proxyAddresses = U.copy(addrs), created = ctx.now,
  })
  local g = model.add_recipient(t, {
    Guid = ctx.sim.rng:guid(), ExternalDirectoryObjectId = id, Identity = p.Name, Name = p.Name,
    Alias = alias, DisplayName = p.DisplayName or p.Name, PrimarySmtpAddress = primary,
    WindowsEmailAddress = primary, EmailAddresses = addrs, RecipientType = kind,
    RecipientTypeDetails = kind,
    LegacyExchangeDN = "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn="
      .. ctx.sim.rng:guid():gsub("%-", "") .. "-" .. alias,
    DistinguishedName = "CN=" .. p.Name .. ",OU=" .. t.initial_domain ..
      ",OU=Microsoft Exchange Hosted Organizations,DC=NAMPR01A001,DC=PROD,DC=OUTLOOK,DC=COM",
    IsDirSynced = false, HiddenFromAddressListsEnabled = false, created = ctx.now,
  })
  for _, m in ipairs(U.list(p.Members)) do add_member(ctx, g, m) end
  return { present(g) }
end

M["Set-DistributionGroup"] = function(ctx, p)
  local g = U.find(ctx, p.Identity, U.GROUP)
  local ch = {}
  for _, k in ipairs { "DisplayName", "Alias", "HiddenFromAddressListsEnabled",
                       "RequireSenderAuthenticationEnabled" } do
    if p[k] ~= nil then ch[k] = p[k] end
  end
  if p.PrimarySmtpAddress then
    ch.PrimarySmtpAddress = p.PrimarySmtpAddress
    local addrs = {}
    for _, a in ipairs(g.EmailAddresses) do addrs[#addrs + 1] = a:gsub("^SMTP:", "smtp:") end
    table.insert(addrs, 1, "SMTP:" .. p.PrimarySmtpAddress)
    ch.EmailAddresses = addrs
  end
  if p.EmailAddresses ~= nil then ch.EmailAddresses = U.edit_list(g.EmailAddresses, p.EmailAddresses) end
  model.update_recipient(ctx.t, g, ch)
  return {}
end

M["Remove-DistributionGroup"] = function(ctx, p)
  local g = U.find(ctx, p.Identity, U.GROUP)
  model.remove_recipient(ctx.t, g.Guid)
  model.remove_object(ctx.state, ctx.t, g.ExternalDirectoryObjectId)
  return {}
end

M["Get-DistributionGroupMember"] = function(ctx, p)
  local g = U.find(ctx, p.Identity, U.GROUP)
  local out = {}
  for mid in pairs(ctx.t.dir.members[g.ExternalDirectoryObjectId] or {}) do
    local r = model.find_recipient(ctx.t, mid)
    if r then
      out[#out + 1] = r
    else
      local o = ctx.t.dir.objects[mid]
      if o then out[#out + 1] = { Name = o.displayName, DisplayName = o.displayName,
                                  ExternalDirectoryObjectId = mid, RecipientType = "User",
                                  RecipientTypeDetails = "User" } end
    end
  end
  return out, function(r)
    return U.present({ Name = r.Name, DisplayName = r.DisplayName, Alias = r.Alias,
      PrimarySmtpAddress = r.PrimarySmtpAddress, RecipientType = r.RecipientType,
      RecipientTypeDetails = r.RecipientTypeDetails, Guid = r.Guid,
      ExternalDirectoryObjectId = r.ExternalDirectoryObjectId, Identity = r.Identity or r.Name })
  end
end

M["Add-DistributionGroupMember"] = function(ctx, p)
  local g = U.find(ctx, p.Identity, U.GROUP)
  if p.Member == nil then
    U.fail(400, U.EX.Argument, "The Member parameter must be specified.")
  end
  add_member(ctx, g, p.Member)
  return {}
end

M["Remove-DistributionGroupMember"] = function(ctx, p)
  local g = U.find(ctx, p.Identity, U.GROUP)
  local m = U.find(ctx, p.Member)
  local set = ctx.t.dir.members[g.ExternalDirectoryObjectId]
  if not (set and set[m.ExternalDirectoryObjectId]) then
    U.fail(400, "Microsoft.Exchange.Management.Tasks.MemberNotFoundException",
      "The recipient \"%s\" isn't a member of the group \"%s\".", m.Name, g.Name)
  end
  set[m.ExternalDirectoryObjectId] = nil
  model.reindex(ctx.t)
  return {}
end

return M
