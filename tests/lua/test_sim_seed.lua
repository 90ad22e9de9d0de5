-- Seeding of the contoso/fabrikam pair: determinism, first-party facts (wire.md §5), realistic
-- mailbox variety (ms-setup-and-prep.md §3.2, §5), model lookups and the state round trip.
local lu = require "luaunit"
local model = require "t2t.sim.model"
local seed = require "t2t.sim.seed"

local N = 400
local state = seed.pair { users = N, seed = 7 }
local src = state.tenants[state.pair.source]
local tgt = state.tenants[state.pair.target]

local function count(t, pred)
  local n = 0
  for _, v in pairs(t) do if pred(v) then n = n + 1 end end
  return n
end

TestSimSeed = {}

function TestSimSeed.test_rng_is_deterministic_and_in_range()
  local a, b = model.rng(5), model.rng(5)
  for _ = 1, 100 do lu.assertEquals(a:next(), b:next()) end
  local r = model.rng("x")
  for _ = 1, 1000 do
    local v = r:int(3, 7)
    lu.assertTrue(v >= 3 and v <= 7)
    local f = r:float()
    lu.assertTrue(f >= 0 and f < 1)
  end
  lu.assertStrMatches(r:guid(), "%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x+")
  lu.assertNotEquals(r:fork("a"):next(), r:fork("b"):next())
end

function TestSimSeed.test_same_seed_same_state_other_seed_other_ids()
  local a = model.encode_state(seed.pair { users = 30, seed = 11 })
  local b = model.encode_state(seed.pair { users = 30, seed = 11 })
  lu.assertEquals(a, b)
  local c = seed.pair { users = 30, seed = 12 }
  lu.assertNotEquals(c.pair.source, seed.pair { users = 30, seed = 11 }.pair.source)
  -- tenant ids and app credentials do not depend on the number of users
  local d = seed.pair { users = 3, seed = 11 }
  local e = seed.pair { users = 60, seed = 11 }
  lu.assertEquals(d.pair, e.pair)
  lu.assertEquals(d.tenants[d.pair.source].seeded, e.tenants[e.pair.source].seeded)
end

function TestSimSeed.test_tenants_and_domains()
  lu.assertEquals(src.name, "contoso")
  lu.assertEquals(tgt.name, "fabrikam")
  lu.assertEquals(src.initial_domain, "contoso.onmicrosoft.com")
  -- (assertTrue, not assertIs: a failure would pretty-print a whole tenant)
  lu.assertTrue(model.tenant(state, "CONTOSO.com") == src)
  lu.assertTrue(model.tenant(state, "fabrikam.onmicrosoft.com") == tgt)
  lu.assertTrue(model.tenant(state, tgt.id) == tgt)
  lu.assertTrue(model.tenant(state, "fabrikam") == tgt)
  lu.assertNil(model.tenant(state, "nope.example"))
  local default = 0
  for _, d in ipairs(src.domains) do if d.isDefault then default = default + 1 end end
  lu.assertEquals(default, 1)
  lu.assertEquals(#src.exo.accepted_domains, #src.domains)
  lu.assertFalse(src.exo.org_config.IsDehydrated)
end

function TestSimSeed.test_first_party_service_principals()
  for _, t in ipairs { src, tgt } do
    local exo = model.sp_by_appid(t, "00000002-0000-0ff1-ce00-000000000000")
    local graph = model.sp_by_appid(t, "00000003-0000-0000-c000-000000000000")
    lu.assertNotNil(exo)
    lu.assertNotNil(graph)
    lu.assertNotNil(model.sp_by_appid(t, "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"))
    lu.assertNotNil(model.sp_by_appid(t, "797f4846-ba00-4fd7-ba43-dac1f8f63013"))
    local roles = {}
    for _, r in ipairs(exo.appRoles) do roles[r.value] = r.id end
    lu.assertEquals(roles["Exchange.ManageAsApp"], "dc50a0fb-09a3-484d-be87-e023b12c6440")
    lu.assertEquals(roles["Mailbox.Migration"], "f7264778-fba9-422d-8e9e-2675a2c4b513")
    roles = {}
    for _, r in ipairs(graph.appRoles) do roles[r.value] = r.id end
    lu.assertEquals(roles["Directory.ReadWrite.All"], "19dbc75e-c2e2-444c-a770-ec69d8559fc7")
    lu.assertEquals(roles["AppRoleAssignment.ReadWrite.All"], "06b708a9-e830-4db3-a914-8e69da51d44f")
    local scopes = {}
    for _, s in ipairs(graph.oauth2PermissionScopes) do scopes[s.value] = s.id end
    lu.assertEquals(scopes["User.Read"], "e1fe6dd8-ba31-4d61-89e7-88639da4683d")
  end
  -- object ids differ per tenant, appIds do not
  lu.assertNotEquals(model.sp_by_appid(src, seed.APP.exo).id, model.sp_by_appid(tgt, seed.APP.exo).id)
end

function TestSimSeed.test_admin_app_roles_wids_secret()
  for _, t in ipairs { src, tgt } do
    local a = t.seeded.admin_app
    local app = t.dir.objects[a.object_id]
    lu.assertEquals(app.appId, a.app_id)
    lu.assertEquals(state.apps_by_appid[a.app_id].tenant, t.id)
    lu.assertStrMatches(app.passwordCredentials[1]._secret, "...8Q~" .. string.rep(".", 34))
    local exo_roles = model.roles_for(t, a.sp_id, seed.APP.exo)
    lu.assertEquals(exo_roles, { "Exchange.ManageAsApp" })
    local graph_roles = model.roles_for(t, a.sp_id, seed.APP.graph)
    local want = table.move(seed.ADMIN_GRAPH_EXTRA, 1, #seed.ADMIN_GRAPH_EXTRA, #seed.ADMIN_GRAPH_ROLES + 1,
                            table.move(seed.ADMIN_GRAPH_ROLES, 1, #seed.ADMIN_GRAPH_ROLES, 1, {}))
    lu.assertEquals(#graph_roles, #want)
    lu.assertItemsEquals(graph_roles, want)
    lu.assertEquals(model.roles_for(t, a.sp_id, seed.APP.keyvault), {})
    lu.assertEquals(model.wids_for(t, a.sp_id), { "29232cdf-9323-42fd-ade2-1d097af3e4de" })
    lu.assertEquals(model.wids_for(t, t.seeded.admin_user), { "62e90394-69f5-4237-9190-012177145e10" })
  end
  lu.assertNotEquals(src.seeded.admin_app.app_id, tgt.seeded.admin_app.app_id)
end

function TestSimSeed.test_wids_through_group_membership()
  local t = seed.pair { users = 2, seed = 3 }
  t = t.tenants[t.pair.target]
  local gid, uid = "g-1", "u-1"
  model.add_object(t == nil and {} or { apps_by_appid = {} }, t,
    { ["@odata.type"] = model.ODATA.group, id = gid, isAssignableToRole = true, displayName = "ra" })
  model.add_role_assignment(t, { id = "ra-1", roleDefinitionId = seed.ROLE["Global Reader"], principalId = gid })
  model.add_member(t, gid, uid)
  lu.assertEquals(model.wids_for(t, uid), { seed.ROLE["Global Reader"] })
end

function TestSimSeed.test_skus_include_ctudm()
  local parts = {}
  for _, s in ipairs(src.dir.skus) do parts[s.skuPartNumber] = s end
  local c = parts.Cross_tenant_user_data_migration
  lu.assertEquals(c.skuId, "946ce899-873d-44bb-9d8b-671870cbfdbf")
  local plans = {}
  for _, p in ipairs(c.servicePlans) do plans[p.servicePlanName] = true end
  lu.assertTrue(plans.EXCHANGEONLINE_T2TMBXMOVE)
  lu.assertTrue(parts.ENTERPRISEPACK.consumedUnits > 0)
  lu.assertTrue(parts.ENTERPRISEPACK.prepaidUnits.enabled >= parts.ENTERPRISEPACK.consumedUnits)
end

function TestSimSeed.test_mailbox_count_and_graph_users_match()
  local boxes = count(src.exo.recipients, function(r) return r.RecipientType == "UserMailbox" end)
  lu.assertEquals(boxes, N)
  for _, r in pairs(src.exo.recipients) do
    local u = src.dir.objects[r.ExternalDirectoryObjectId]
    lu.assertNotNil(u, r.Name)
    if r.RecipientType == "UserMailbox" then
      lu.assertEquals(u.mail, r.PrimarySmtpAddress)
      lu.assertEquals(u.userPrincipalName, r.UserPrincipalName)
      lu.assertNotEquals(r.ExchangeGuid, model.ZERO_GUID)
    end
  end
  local tboxes = count(tgt.exo.recipients, function(r) return r.RecipientType == "UserMailbox" end)
  lu.assertTrue(tboxes >= 1 and tboxes <= 10)
end

function TestSimSeed.test_realistic_variety()
  local R = src.exo.recipients
  local legdn = "^/o=ExchangeLabs/ou=Exchange Administrative Group %(FYDIBOHF23SPDLT%)/cn=Recipients/cn=%x+%-"
  for _, r in pairs(R) do
    lu.assertStrMatches(r.LegacyExchangeDN, legdn .. ".+$")
    lu.assertEquals(r.LegacyExchangeDN:match("cn=(%x+)%-[^/]*$"):len(), 32)
  end
  local function n(pred) return count(R, pred) end
  lu.assertTrue(n(function(r) return r.ArchiveGuid ~= model.ZERO_GUID end) > N * 0.1)
  lu.assertTrue(n(function(r) return (r.AuxArchiveCount or 0) > 12 end) >= 1)
  lu.assertTrue(n(function(r) return r.LitigationHoldEnabled end) >= 1)
  lu.assertTrue(n(function(r) return r.InPlaceHolds and #r.InPlaceHolds > 0 end) >= 1)
  lu.assertTrue(n(function(r) return r.RecipientTypeDetails == "SharedMailbox" end) >= 1)
  lu.assertTrue(n(function(r) return r.RecipientTypeDetails == "MailUniversalSecurityGroup" end) >= 1)
  lu.assertTrue(n(function(r) return r.IsDirSynced end) >= 1)
  lu.assertTrue(n(function(r) return r.DisplayName:find("[\128-\255]") ~= nil end) >= 1)
  lu.assertTrue(n(function(r) return r.DisplayName:find(",", 1, true) ~= nil end) >= 1)
  lu.assertTrue(n(function(r) return r.Alias:find("'", 1, true) ~= nil end) >= 1)
  local x500, domains = 0, {}
  for _, r in pairs(R) do
    for _, a in ipairs(r.EmailAddresses) do
      if a:lower():sub(1, 5) == "x500:" then x500 = x500 + 1 end
      local d = a:match("^[sS][mM][tT][pP]:.*@(.+)$")
      if d then domains[d] = true end
    end
    -- aux archives are visible as MailboxLocations entries, as CSS-val counts them
    local aux = 0
    for _, l in ipairs(r.MailboxLocations or {}) do if l:find(";AuxArchive;", 1, true) then aux = aux + 1 end end
    lu.assertEquals(aux, r.AuxArchiveCount or 0)
  end
  lu.assertTrue(x500 > 0)
  local nd = 0
  for _ in pairs(domains) do nd = nd + 1 end
  lu.assertTrue(nd >= 4, "proxy domains: " .. nd)
  -- aliases are unique
  local seen = {}
  for _, r in pairs(R) do
    lu.assertNil(seen[r.Alias:lower()], r.Alias)
    seen[r.Alias:lower()] = true
  end
end

function TestSimSeed.test_find_recipient_like_exo_identity()
  local any
  for _, r in pairs(src.exo.recipients) do
    if r.RecipientType == "UserMailbox" and #r.EmailAddresses > 3 then any = r break end
  end
  lu.assertTrue(model.find_recipient(src, any.PrimarySmtpAddress:upper()) == any)
  lu.assertTrue(model.find_recipient(src, any.Alias) == any)
  lu.assertTrue(model.find_recipient(src, any.ExchangeGuid) == any)
  lu.assertTrue(model.find_recipient(src, any.Guid) == any)
  lu.assertTrue(model.find_recipient(src, any.ExternalDirectoryObjectId) == any)
  lu.assertTrue(model.find_recipient(src, any.LegacyExchangeDN) == any)
  lu.assertTrue(model.find_recipient(src, any.DistinguishedName) == any)
  lu.assertTrue(model.find_recipient(src, any.EmailAddresses[2]) == any)      -- "smtp:..." form
  local r, why = model.find_recipient(src, "nobody@contoso.com")
  lu.assertNil(r)
  lu.assertEquals(why, "notfound")
  -- a change of address moves the index
  local old = any.Alias
  model.update_recipient(src, any, { Alias = "renamed-alias" })
  local found = model.find_recipient(src, "Renamed-Alias")
  model.update_recipient(src, any, { Alias = old })
  lu.assertTrue(found == any)
  lu.assertTrue(model.find_recipient(src, old) == any)
  lu.assertEquals(model.exo_property(any, "Identity"), any.Name)
  lu.assertEquals(model.exo_property(any, "WindowsEmailAddress"), any.PrimarySmtpAddress)
  lu.assertEquals(model.exo_property(any, "RetentionHoldEnabled"), false)
end

function TestSimSeed.test_state_round_trip()
  local small = seed.pair { users = 20, seed = 9 }
  local path = os.tmpname()
  assert(model.save(small, path))
  local back = assert(model.load(path))
  os.remove(path)
  lu.assertTrue(lu.private.is_table_equals(back, small), "state differs after a round trip")
  local t = back.tenants[back.pair.source]
  local a = t.seeded.admin_app
  lu.assertEquals(model.roles_for(t, a.sp_id, seed.APP.exo), { "Exchange.ManageAsApp" })
  lu.assertNil(model.decode_state("{"))
  lu.assertNil(model.decode_state('{"version":2,"tenants":{}}'))
end
