-- Canonical summary of what user preparation changes in a simulator state (the target's mail
-- users, contacts and mailboxes, their licences, the source scope group), without the ids a run
-- generates, so a clean run, a run under faults and runs killed half-way compare line by line.
--   build/t2t tests/e2e/users_state.lua STATE.json   -> summary lines; then "duplicates: N",
--   "provisioned by licence: N" (the licence-before-GUID trap fired), "licensed before GUID: N"
local cjson = require "cjson"
local f = assert(io.open(arg[1], "r"))
local state = cjson.decode(f:read("a"))
f:close()
local ZERO = "00000000-0000-0000-0000-000000000000"
local lines, dup, trap, early = {}, 0, 0, 0
local function list(v)
  local out = {}
  for _, x in ipairs(type(v) == "table" and v or {}) do out[#out + 1] = tostring(x) end
  table.sort(out, function(a, b) return a:lower() < b:lower() end)
  return table.concat(out, ",")
end
local src, tgt
for _, t in pairs(state.tenants) do
  if t.name == "contoso" then src = t elseif t.name == "fabrikam" then tgt = t end
end
local source_guids = {}
for _, r in pairs(src.exo.recipients) do
  if r.ExchangeGuid and r.ExchangeGuid ~= ZERO then source_guids[r.ExchangeGuid:lower()] = r.Alias end
end
local by_addr, by_guid = {}, {}
for _, r in pairs(tgt.exo.recipients) do
  local kind = r.RecipientTypeDetails
  if kind == "MailUser" or kind == "MailContact" or kind == "UserMailbox" then
    local u = tgt.dir.objects[r.ExternalDirectoryObjectId or ""] or {}
    local lic = {}
    for _, l in ipairs(u.assignedLicenses or {}) do lic[#lic + 1] = l.skuId .. "-" .. list(l.disabledPlans) end
    local g = (r.ExchangeGuid or ZERO):lower()
    lines[#lines + 1] = string.format("%s %s guid=%s arch=%s ext=%s upn=%s loc=%s addrs=%s lic=%s", kind,
      tostring(r.PrimarySmtpAddress), source_guids[g] and ("source:" .. source_guids[g]) or (g == ZERO and "zero" or "other"),
      tostring(r.ArchiveGuid or ZERO), tostring(r.ExternalEmailAddress), tostring(r.UserPrincipalName),
      tostring(u.usageLocation), list(r.EmailAddresses), list(lic))
    local a = tostring(r.PrimarySmtpAddress):lower()
    by_addr[a] = (by_addr[a] or 0) + 1
    if g ~= ZERO then by_guid[g] = (by_guid[g] or 0) + 1 end
    if r.ProvisionedByLicense then trap = trap + 1 end
    if kind == "MailUser" and #lic > 0 and not source_guids[g] and g ~= ZERO then early = early + 1 end
    if kind == "MailUser" then
      for _, l in ipairs(u.assignedLicenses or {}) do
        if l.skuId == "6fd2c87f-b296-42f0-b197-1e91e994b900" and g == ZERO then early = early + 1 end
      end
    end
  end
end
for _, n in pairs(by_addr) do if n > 1 then dup = dup + n - 1 end end
for _, n in pairs(by_guid) do if n > 1 then dup = dup + n - 1 end end
local members = {}
for gid, set in pairs(src.dir.members) do
  local g = src.dir.objects[gid]
  if g and g.securityEnabled and g.mailEnabled then
    local l = {}
    for mid in pairs(set) do
      local o = src.dir.objects[mid]
      l[#l + 1] = o and (o.mail or o.userPrincipalName) or mid
    end
    members[#members + 1] = "scope " .. tostring(g.displayName) .. " " .. list(l)
  end
end
table.sort(lines)
table.sort(members)
io.write(table.concat(lines, "\n"), "\n", table.concat(members, "\n"), "\n")
io.write(string.format("duplicates: %d\nprovisioned by licence: %d\nlicensed before GUID: %d\n", dup, trap, early))
