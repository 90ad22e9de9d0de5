-- The simulated Graph's $orderby, $search and $expand (wire.md §3.13), called directly like
-- test_sim_graph.lua but with a small world of users whose names make the order visible:
-- id order, case-sensitive order and userPrincipalName order all differ from the expected one.
local lu = require "luaunit"
local cjson = require "cjson"
local graph = require "t2t.sim.graph"

local T1 = "11111111-1111-4111-8111-111111111111"
local EVENTUAL = { ConsistencyLevel = "eventual" }

-- {id suffix, displayName, mail nickname}; user 4 has no displayName
local PEOPLE = {
  { 1, "Dave-Ann Morris", "morris" }, { 2, "bob Baker", "baker" }, { 3, "Carol Alvarez", "alvarez.c" },
  { 4, nil, "ghost" }, { 5, "Alice Zephyr", "zephyr" }, { 6, "Erin alvarez", "alvarez.e" },
}
local BY_NAME = { "Alice Zephyr", "bob Baker", "Carol Alvarez", "Dave-Ann Morris", "Erin alvarez", "<none>" }

local function world()
  local n = 0
  local dir = { objects = {}, by_appid_sp = {}, app_role_assignments = {}, role_assignments = {},
                role_definitions = {}, skus = {}, members = {} }
  local state = { version = 1, domains = {}, apps_by_appid = {}, tenants = { [T1] = {
    id = T1, name = "contoso", initial_domain = "contoso.onmicrosoft.com", display_name = "contoso",
    domains = {}, dir = dir, exo = { recipients = {} }, azure = { subscriptions = {} } } } }
  local sim = { state = state, faults = {}, clock = 1700000000, hidden = {}, rng = {
    guid = function() n = n + 1; return string.format("%08x-0000-4000-8000-%012x", n, n) end,
    int = function(_, a, b) n = n + 1; return a + n % (b - a + 1) end } }
  function sim:now() return self.clock end
  function sim:visible(obj) return not self.hidden[obj] end
  function sim:auth() return { tid = T1, appid = "admin-app", oid = "admin-sp",
    roles = { "User.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All" } } end
  for _, p in ipairs(PEOPLE) do
    local id = string.format("aaaaaaaa-0000-4000-8000-%012d", p[1])
    dir.objects[id] = { ["@odata.type"] = "#microsoft.graph.user", id = id, created = 0,
      displayName = p[2], userPrincipalName = p[3] .. "@contoso.com", mail = p[3] .. "@contoso.com" }
  end
  return sim
end

-- GET path (query string already encoded where needed) → status, decoded body.
local function get(sim, path, headers)
  local res = graph.handle(sim, { method = "GET", path = path, headers = headers or {} })
  local body = res.body
  if type(body) == "string" and body:sub(1, 1) == "{" then body = cjson.decode(body) end
  return res.status, body
end

local function names(body)
  local out = {}
  for i, u in ipairs(body.value) do
    out[i] = u.displayName ~= cjson.null and u.displayName or "<none>"
  end
  return out
end

local function reversed(t)
  local out = {}
  for i = #t, 1, -1 do out[#out + 1] = t[i] end
  return out
end

-- Every page from path on, following @odata.nextLink; the names in order and the page count.
local function all_pages(sim, path, headers)
  local seen, pages = {}, 0
  while path do
    local status, body = get(sim, path, headers)
    lu.assertEquals(status, 200, path)
    pages = pages + 1
    for _, name in ipairs(names(body)) do seen[#seen + 1] = name end
    local link = body["@odata.nextLink"]
    path = link and link:gsub("^https://graph%.microsoft%.com", "")
  end
  return seen, pages
end

local function q(s) return (s:gsub(" ", "%%20"):gsub('"', "%%22")) end

local function assert_error(status, body, want_status, want_code, pattern)
  lu.assertEquals(status, want_status, type(body) == "table" and cjson.encode(body) or tostring(body))
  lu.assertEquals(body.error.code, want_code)
  if pattern then lu.assertStrContains(body.error.message, pattern) end
end

TestSimGraphQuery = {}

---------------------------------------------------------------------------------------------
-- $orderby

function TestSimGraphQuery.test_orderby_display_name_asc_without_eventual()
  local status, body = get(world(), "/v1.0/users?$select=id,displayName&$orderby=displayName")
  lu.assertEquals(status, 200)
  lu.assertEquals(names(body), BY_NAME)
  status, body = get(world(), "/v1.0/users?$orderby=" .. q("displayName asc"))
  lu.assertEquals(status, 200)
  lu.assertEquals(names(body), BY_NAME)
end

function TestSimGraphQuery.test_orderby_desc_puts_missing_first()
  local status, body = get(world(), "/v1.0/users?$orderby=" .. q("displayName DESC"))
  lu.assertEquals(status, 200)
  lu.assertEquals(names(body), reversed(BY_NAME))
end

function TestSimGraphQuery.test_orderby_user_principal_name_without_eventual()
  local status, body = get(world(), "/v1.0/users?$orderby=userPrincipalName")
  lu.assertEquals(status, 200)
  lu.assertEquals(names(body),
    { "Carol Alvarez", "Erin alvarez", "bob Baker", "<none>", "Dave-Ann Morris", "Alice Zephyr" })
end

function TestSimGraphQuery.test_orderby_other_property_is_advanced()
  local status, body = get(world(), "/v1.0/users?$orderby=mail")
  assert_error(status, body, 400, "Request_UnsupportedQuery", "Sorting not supported for current query.")
  status, body = get(world(), "/v1.0/users?$orderby=" .. q("mail desc"), EVENTUAL)
  lu.assertEquals(status, 200)
  lu.assertEquals(names(body)[1], "Alice Zephyr")   -- zephyr@ sorts last, so first descending
end

function TestSimGraphQuery.test_orderby_paging_top_2_visits_each_user_once_in_order()
  local seen, pages = all_pages(world(), "/v1.0/users?$select=id,displayName&$top=2&$orderby=displayName")
  lu.assertEquals(seen, BY_NAME)
  lu.assertEquals(pages, 3)
  seen, pages = all_pages(world(), "/v1.0/users?$top=4&$orderby=" .. q("displayName desc"))
  lu.assertEquals(seen, reversed(BY_NAME))
  lu.assertEquals(pages, 2)
end

-- The next page starts after the last user served, not at an offset: deleting a user already
-- served neither skips nor repeats anyone.
function TestSimGraphQuery.test_orderby_paging_survives_a_delete_between_pages()
  local sim = world()
  local _, body = get(sim, "/v1.0/users?$top=2&$orderby=displayName")
  lu.assertEquals(names(body), { "Alice Zephyr", "bob Baker" })
  sim.state.tenants[T1].dir.objects[body.value[1].id] = nil
  local rest = all_pages(sim, (body["@odata.nextLink"]:gsub("^https://graph%.microsoft%.com", "")))
  lu.assertEquals(rest, { "Carol Alvarez", "Dave-Ann Morris", "Erin alvarez", "<none>" })
end

function TestSimGraphQuery.test_orderby_with_filter_needs_eventual()
  local path = "/v1.0/users?$filter=" .. q("startswith(mail,'alvarez')") .. "&$orderby=" .. q("displayName desc")
  local status, body = get(world(), path)
  assert_error(status, body, 400, "Request_UnsupportedQuery", "Sorting not supported for current query.")
  status, body = get(world(), path, EVENTUAL)
  lu.assertEquals(status, 200)
  lu.assertEquals(names(body), { "Erin alvarez", "Carol Alvarez" })
end

function TestSimGraphQuery.test_orderby_unknown_property_and_bad_syntax()
  local status, body = get(world(), "/v1.0/users?$orderby=colour")
  assert_error(status, body, 400, "BadRequest",
    "Could not find a property named 'colour' on type 'microsoft.graph.user'.")
  status, body = get(world(), "/v1.0/users?$orderby=" .. q("displayName sideways"))
  assert_error(status, body, 400, "BadRequest", "Syntax error at position 12 in 'displayName sideways'.")
end

-- A $skiptoken from an unsorted listing does not name a place in a sorted one.
function TestSimGraphQuery.test_orderby_refuses_an_unsorted_skiptoken()
  local sim = world()
  local _, body = get(sim, "/v1.0/users?$top=2")
  local tok = body["@odata.nextLink"]:match("%$skiptoken=([^&]+)")
  local status, err = get(sim, "/v1.0/users?$top=2&$orderby=displayName&$skiptoken=" .. tok)
  assert_error(status, err, 400, "Request_BadRequest", "Invalid $skiptoken.")
end

---------------------------------------------------------------------------------------------
-- $search

local function search(expr, extra, headers)
  return get(world(), "/v1.0/users?$search=" .. q(expr) .. (extra or ""), headers or EVENTUAL)
end

local function sorted_names(body)
  local t = names(body)
  table.sort(t)
  return t
end

function TestSimGraphQuery.test_search_matches_word_prefixes()
  local status, body = search('"displayName:alv"')
  lu.assertEquals(status, 200)
  lu.assertEquals(sorted_names(body), { "Carol Alvarez", "Erin alvarez" })
  _, body = search('"displayName:ann"')                    -- "Dave-Ann": words split on '-'
  lu.assertEquals(names(body), { "Dave-Ann Morris" })
  _, body = search('"displayName:lice"')                   -- inside a word, not a prefix
  lu.assertEquals(#body.value, 0)
  _, body = search('"mail:zeph"')
  lu.assertEquals(names(body), { "Alice Zephyr" })
end

function TestSimGraphQuery.test_search_and_or()
  local _, body = search('"displayName:alvarez" AND "mail:alvarez.e"')
  lu.assertEquals(names(body), { "Erin alvarez" })
  _, body = search('"displayName:alice" or "displayName:bob"')
  lu.assertEquals(sorted_names(body), { "Alice Zephyr", "bob Baker" })
  -- AND binds tighter than OR
  _, body = search('"displayName:alice" OR "displayName:bob" AND "mail:nobody"')
  lu.assertEquals(names(body), { "Alice Zephyr" })
end

function TestSimGraphQuery.test_search_no_match_is_empty()
  local status, body = search('"displayName:nobody"', "&$count=true")
  lu.assertEquals(status, 200)
  lu.assertEquals(#body.value, 0)
  lu.assertEquals(body["@odata.count"], 0)
end

function TestSimGraphQuery.test_search_with_filter_orderby_and_count()
  local status, body = search('"displayName:alvarez" OR "displayName:bob"',
    "&$filter=" .. q("mail ne 'baker@contoso.com' or startswith(displayName,'bob')")
    .. "&$orderby=" .. q("displayName desc") .. "&$count=true&$top=2")
  lu.assertEquals(status, 200)
  lu.assertEquals(names(body), { "Erin alvarez", "Carol Alvarez" })
  lu.assertEquals(body["@odata.count"], 3)
  _, body = get(world(), body["@odata.nextLink"]:gsub("^https://graph%.microsoft%.com", ""), EVENTUAL)
  lu.assertEquals(names(body), { "bob Baker" })
  lu.assertNil(body["@odata.count"])
end

function TestSimGraphQuery.test_search_bad_syntax_is_400()
  local status, body = search("displayName:alice")
  assert_error(status, body, 400, "BadRequest",
    "Syntax error: character 'd' is not valid at position 0 in 'displayName:alice'.")
  status, body = search('"alice"')
  assert_error(status, body, 400, "BadRequest", "has no property name at position 0")
  status, body = search('"displayName:alice" "mail:x"')
  assert_error(status, body, 400, "BadRequest", "AND or OR is expected at position 20")
  status, body = search('"displayName:alice" AND')
  assert_error(status, body, 400, "BadRequest", "a clause is missing after AND")
  status, body = search('"displayName:alice')
  assert_error(status, body, 400, "BadRequest", "the quote is not closed at position 0")
  status, body = search('"colour:red"')
  assert_error(status, body, 400, "Request_BadRequest", "Property 'colour' does not exist")
end

function TestSimGraphQuery.test_search_needs_eventual()
  local status, body = search('"displayName:alice"', nil, {})
  assert_error(status, body, 400, "Request_UnsupportedQuery", "ConsistencyLevel: eventual")
end

---------------------------------------------------------------------------------------------
-- $expand

-- memberOf, members, owners, appRoleAssignments expand; another navigation property is 501
-- (never silently left out), a name the type lacks is 400
function TestSimGraphQuery.test_expand_modelled_navs_501_others_400_unknown()
  local status, body = get(world(), "/v1.0/users?$expand=memberOf")
  lu.assertEquals(status, 200)
  lu.assertNotNil(body.value[1].memberOf)
  status, body = get(world(), "/v1.0/users/aaaaaaaa-0000-4000-8000-000000000001?$expand=manager")
  assert_error(status, body, 501, "NotImplemented", "does not expand 'manager'")
  status, body = get(world(), "/v1.0/users?$expand=nosuchthing")
  assert_error(status, body, 400, "BadRequest", "Could not find a property named 'nosuchthing'")
end

-- /users/$count counts what the same $search and $filter would list
function TestSimGraphQuery.test_count_segment_applies_search_and_filter()
  local sim = world()
  local status, body = get(sim, "/v1.0/users/$count?$search=" .. q('"displayName:alvarez"'), EVENTUAL)
  lu.assertEquals(status, 200)
  lu.assertEquals(body, "2")
  status, body = get(sim, "/v1.0/users/$count?$search=" .. q('"displayName:alvarez"')
    .. "&$filter=" .. q("startswith(displayName,'Erin')"), EVENTUAL)
  lu.assertEquals(body, "1")
  status = get(sim, "/v1.0/users/$count?$search=" .. q("alvarez"), EVENTUAL)
  lu.assertEquals(status, 400)
end
