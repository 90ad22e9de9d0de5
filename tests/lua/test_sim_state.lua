-- The simulator's state file across processes (issue 9, defect 2 and the crash leftovers):
-- ids are never handed out twice, however often the state is loaded; a run from the same seed
-- gives the same ids; a change is in the state file once it has been answered.
local lu = require "luaunit"
local sim = require "t2t.sim"
local session = require "t2t.tenant.session"
local model = require "t2t.sim.model"

local function tmp()
  local p = os.tmpname()
  os.remove(p)
  return p .. ".json"
end

local function load(path) return assert(model.load(path)) end

-- One simulator process's life on `path`: start (load or seed), one Graph create, stop (save).
local function one_run(path, i)
  local s = assert(sim.start { state = path, users = 2, seed = 11 })
  local c = assert(session.clients(s.profile.tenants.fabrikam, { ca_file = s.ca_file, connect_to = s.connect_to }, s))
  local g = assert(c.graph:post("/groups", { displayName = "G" .. i, mailEnabled = false,
                                             securityEnabled = true, mailNickname = "g" .. i }))
  local app = assert(c.graph:post("/applications", { displayName = "A" .. i }))
  -- answered, hence durable: the state file holds it before the simulator stops
  local st = load(path)
  local found = false
  for _, t in pairs(st.tenants) do if t.dir.objects[g.id] then found = true end end
  assert(s:stop())
  return g.id, app, found
end

TestSimState = {}

function TestSimState.test_ids_are_unique_across_loads_and_reproducible()
  local a, b = tmp(), tmp()
  local ids, apps, durable = {}, {}, {}
  for i = 1, 3 do
    local gid, app, found = one_run(a, i)
    ids[i], apps[i], durable[i] = gid, app, found
  end
  lu.assertNotEquals(ids[1], ids[2])
  lu.assertNotEquals(ids[2], ids[3])
  lu.assertNotEquals(ids[1], ids[3])
  for i = 1, 3 do lu.assertTrue(durable[i], "run " .. i .. ": the create is in the state file at once") end
  -- three runs that each created a group left three groups (before: one, overwritten twice)
  local st, groups, seen = load(a), 0, {}
  for _, t in pairs(st.tenants) do
    for id, o in pairs(t.dir.objects) do
      if o["@odata.type"] == "#microsoft.graph.group" and o.displayName:match("^G%d$") then groups = groups + 1 end
      lu.assertNil(seen[id], "id " .. id .. " is used twice")
      seen[id] = true
    end
  end
  lu.assertEquals(groups, 3)
  for i = 2, 3 do lu.assertNotEquals(apps[i].appId, apps[1].id) end
  -- the same seed and the same requests give the same ids
  for i = 1, 3 do lu.assertEquals((one_run(b, i)), ids[i]) end
  for _, p in ipairs { a, b } do
    lu.assertNil(io.open(p .. ".tmp"), "no temporary file is left")
    os.remove(p)
  end
end
