-- t2t.batch.post: after the batches complete (ms-setup-and-prep.md §6.4-6.5, §5.6, §4.8):
-- check each user converted on both sides (target Mailbox with the source's ExchangeGuid; source
-- MailUser whose ExternalEmailAddress points into the target delivery domain), re-stamp Send on
-- Behalf (it does not move), list what admins must still do, and -- once the project is over --
-- tear the migration plumbing down: the batches, the endpoint, the organization relationships'
-- move settings, the migration app and its consent in the source.
local t2t = require "t2t"

local M = {}
local lower, fmt = string.lower, string.format

local function list(v)
  if v == nil then return {} end
  if type(v) == "table" then return v end
  return { v }
end

local function one(t, cmdlet, id)
  local l = t:xo(cmdlet, { Identity = id })
  return l and l[1]
end

-- check_user(px, u) -> row {user, source, target_ok, source_ok, detail}
function M.check_user(px, u)
  local rec = px.journal and px.journal:user(u.address) or {}
  local row = { user = u.address, source = rec.source, batch = u.batch }
  local mbx = one(px.target, "Get-Mailbox", u.address)
  if not mbx then
    row.target_ok, row.detail = false, "the target has no mailbox " .. u.address
    return row
  end
  row.target_ok = rec.exchange_guid == nil or lower(mbx.ExchangeGuid or "") == lower(rec.exchange_guid)
  if not row.target_ok then row.detail = fmt("the target mailbox has ExchangeGuid %s, not the source's %s",
    tostring(mbx.ExchangeGuid), rec.exchange_guid) end
  row.mailbox = mbx
  if px.source then
    local s = one(px.source, "Get-MailUser", rec.exchange_guid or rec.source or u.address)
    local ext = s and tostring(s.ExternalEmailAddress or ""):gsub("^%a+:", "")
    local dom = ext and ext:match("@(.+)$")
    row.source_ok = s ~= nil and dom ~= nil and (lower(dom) == lower(px.tdd or "") or dom ~= (rec.source or ""):match("@(.+)$"))
    row.forward = ext
    if not s then row.detail = (row.detail and row.detail .. "; " or "") .. "the source is not a mail user yet"
    elseif not row.source_ok then row.detail = (row.detail and row.detail .. "; " or "") ..
      "the source mail user forwards to " .. tostring(ext) end
  end
  return row
end

-- The target address of a delegate named by the source (Name, alias, address), when that
-- delegate moved too.
local function moved_delegate(px, name)
  local n = lower(name)
  for _, r in pairs(px.journal and px.journal.doc.users or {}) do
    if lower(r.name or "") == n or lower(r.source or "") == n or lower((r.source or ""):match("^[^@]+") or "") == n then
      return r.target
    end
  end
end

-- restamp(px, row) -> {added = {...}, missing = {...}} | nil, err: Send on Behalf again on the
-- target mailbox, for the delegates who moved too (§5.6: publicDelegates does not move).
function M.restamp(px, row)
  local rec = px.journal and px.journal:user(row.user) or {}
  local d = rec.delegates or {}
  local want, missing = {}, {}
  for _, name in ipairs(list(d.SendOnBehalf)) do
    local tgt = moved_delegate(px, name)
    if tgt then want[#want + 1] = tgt else missing[#missing + 1] = name end
  end
  if #want == 0 then return { added = {}, missing = missing } end
  local have = {}
  for _, n in ipairs(list(row.mailbox and row.mailbox.GrantSendOnBehalfTo)) do have[lower(n)] = true end
  local add = {}
  for _, a in ipairs(want) do
    local r = one(px.target, "Get-Recipient", a)
    local known = r and (have[lower(r.Name or "")] or have[lower(r.PrimarySmtpAddress or "")] or have[lower(a)])
    if not known then add[#add + 1] = a end
  end
  if #add == 0 then return { added = {}, missing = missing } end
  local t = px.target
  local _, err = t:checked({ kind = "update", target = fmt("Send on Behalf of mailbox %s", row.user), tenant = t.name,
    operation = "post_restamp", before = { GrantSendOnBehalfTo = list(row.mailbox.GrantSendOnBehalfTo) },
    after = { GrantSendOnBehalfTo = add }, note = "publicDelegates does not move with the mailbox (§5.6)",
    apply = function() return t:xo("Set-Mailbox", { Identity = row.user, GrantSendOnBehalfTo = { add = add } }) end },
    function()
      local m = one(t, "Get-Mailbox", row.user)
      return m and #list(m.GrantSendOnBehalfTo) >= #add or nil
    end)
  if err and err ~= "planned" then return nil, err end
  return { added = add, missing = missing, planned = err == "planned" }
end

-- check(px, users) -> rows, in the users' order, read concurrently.
function M.check(px, users)
  local res = t2t.parallel(users, function(u) return M.check_user(px, u) end, { concurrency = 8 })
  local rows = {}
  for i, r in ipairs(res) do
    rows[i] = r.ok and r.value or { user = users[i].address, target_ok = false, detail = tostring(r.err) }
  end
  return rows
end

-- todo(px, rows) -> the lines of what admins must still do.
function M.todo(px, rows)
  local n, synced = #rows, 0
  for _, r in ipairs(rows) do
    if r.mailbox and r.mailbox.IsDirSynced then synced = synced + 1 end
  end
  local out = {
    fmt("Outlook: the %d moved users need a new Outlook profile (new UPN and address); plan for OST and offline " ..
        "address book downloads.", n),
    "Teams: meetings the moved users organised keep their old join links: they must be recreated.",
    "Licences: give the new mailboxes their Exchange licence within the 30-day grace period (§5.2).",
    "Mail flow: mail to the old addresses goes through the source tenant's mail users first; keep them until the " ..
      "domains move, and update any on-premises mail users with the new targetAddress (free/busy does not follow " ..
      "several redirects).",
  }
  if synced > 0 then
    out[#out + 1] = fmt("Hybrid: %d target mailboxes are synchronised from on-premises: Enable-RemoteMailbox " ..
      "there, and set the on-premises targetAddress of the source objects to the new address.", synced)
  end
  for _, d in ipairs(px.dkim or {}) do
    if not d.ok then out[#out + 1] = fmt("DKIM for %s: %s -- t2t run dkim-setup --domain %s", d.domain, d.why, d.domain) end
  end
  return out
end

-- dkim(px, rows) -> {{domain, ok, why}} for the target domains the moved users' addresses use.
function M.dkim(px, rows)
  local seen, out = {}, {}
  for _, r in ipairs(rows) do
    local dom = lower((r.user or ""):match("@(.+)$") or "")
    if dom ~= "" and not dom:find("onmicrosoft%.com$") and not seen[dom] then
      seen[dom] = true
      local ok, why = require("t2t.dkim").signing_ok(px.target, dom)
      out[#out + 1] = { domain = dom, ok = ok, why = why }
    end
  end
  table.sort(out, function(a, b) return a.domain < b.domain end)
  return out
end

---------------------------------------------------------------------------------------------
-- Teardown (§4.8): a list of changes, shown first, applied only after that.

local function orgrel_change(t, rel, side)
  local caps = list(rel.MailboxMoveCapability)
  local moving = rel.MailboxMoveEnabled == true
  for _, c in ipairs(caps) do if c ~= "None" then moving = true end end
  if not moving and (side ~= "source" or (rel.OAuthApplicationId or "") == "") then return nil end
  local p = { Identity = rel.Identity or rel.Name, MailboxMoveEnabled = false, MailboxMoveCapability = "None" }
  local before = { MailboxMoveEnabled = rel.MailboxMoveEnabled, MailboxMoveCapability = table.concat(caps, ", ") }
  local after = { MailboxMoveEnabled = false, MailboxMoveCapability = "None" }
  if side == "source" then
    p.OAuthApplicationId, p.MailboxMovePublishedScopes = "", {}
    before.OAuthApplicationId = rel.OAuthApplicationId
    before.MailboxMovePublishedScopes = table.concat(list(rel.MailboxMovePublishedScopes), ", ")
    after.OAuthApplicationId, after.MailboxMovePublishedScopes = "", ""
  end
  return { tenant = t, kind = "update", target = fmt("organization relationship '%s' (move settings)", p.Identity),
    before = before, after = after, note = "the relationship stays (free/busy may use it); only mailbox moves are switched off",
    apply = function() return t:xo("Set-OrganizationRelationship", p) end }
end

-- teardown(px, o) -> changes {tenant, kind, target, apply, ...} | nil, err.  o.batches: the batch
-- names to remove first (completed ones).
function M.teardown(px, o)
  local t, s = px.target, px.source
  local changes = {}
  for _, name in ipairs(o.batches or {}) do
    changes[#changes + 1] = { tenant = t, kind = "delete", target = fmt("migration batch '%s'", name),
      apply = function() return px.backend:remove(name) end }
  end
  local app_id
  local ep = px.endpoint and one(t, "Get-MigrationEndpoint", px.endpoint)
  if ep then
    app_id = ep.ApplicationId
    changes[#changes + 1] = { tenant = t, kind = "delete", target = fmt("migration endpoint '%s'", px.endpoint),
      apply = function() return t:xo("Remove-MigrationEndpoint", { Identity = px.endpoint }) end }
  end
  if px.source_id then
    local rels = t:org_relationships(px.source_id)
    local c = rels and rels.keyed and orgrel_change(t, rels.keyed, "target")
    if c then changes[#changes + 1] = c end
  end
  if s and t.id then
    local rels = s:org_relationships(t.id)
    local c = rels and rels.keyed and orgrel_change(s, rels.keyed, "source")
    if c then
      app_id = app_id or rels.keyed.OAuthApplicationId
      changes[#changes + 1] = c
    end
  end
  if app_id and app_id ~= "" then
    local app = t:gget("/applications(appId='" .. app_id .. "')")
    if app then
      changes[#changes + 1] = { tenant = t, kind = "delete", target = fmt("application '%s' (%s) and its secrets",
        tostring(app.displayName), app_id), note = "IRREVERSIBLE after 30 days (deleted applications can be restored until then)",
        apply = function() return t:gdelete("/applications/" .. app.id) end }
    end
    if s then
      local sp = s:find_sp(app_id)
      if sp then
        changes[#changes + 1] = { tenant = s, kind = "delete", target = fmt("service principal of the migration app %s " ..
          "(its consent)", app_id), apply = function() return s:gdelete("/servicePrincipals/" .. sp.id) end }
      end
    end
  end
  return changes
end

return M
