-- Canonical summary of a migration in a simulator state, without the ids a run generates, so a
-- clean run, a run under faults and runs killed half-way compare line by line:
--   build/t2t tests/e2e/batch_state.lua STATE.json  ->
--   one line per user uNNN: the target object's kind, whether it carries the source's
--   ExchangeGuid, the source object's kind and where it forwards, the batch of its migration
--   user and that user's status; then "batches: ...", "users in two batches: N" (a user with
--   more than one entry that is not a failure), "users in no batch: N", "migration users: N".
local cjson = require "cjson"
local f = assert(io.open(arg[1], "r"))
local state = cjson.decode(f:read("a"))
f:close()
local ZERO = "00000000-0000-0000-0000-000000000000"
local src, tgt
for _, t in pairs(state.tenants) do
  if t.name == "contoso" then src = t elseif t.name == "fabrikam" then tgt = t end
end
local function by_alias(t)
  local out = {}
  for _, r in pairs(t.exo.recipients) do
    if type(r.Alias) == "string" and r.Alias:match("^u%d%d%d$") then out[r.Alias] = r end
  end
  return out
end
local S, T = by_alias(src), by_alias(tgt)
local entries = {}
for _, u in pairs(tgt.exo.migration_users or {}) do
  local a = tostring(u.Identity):lower():match("^(u%d%d%d)@")
  if a then
    entries[a] = entries[a] or {}
    table.insert(entries[a], u)
  end
end
local lines, two, none = {}, 0, 0
local names = {}
for a in pairs(S) do names[#names + 1] = a end
table.sort(names)
for _, a in ipairs(names) do
  local s, t = S[a], T[a]
  local live = {}
  for _, e in ipairs(entries[a] or {}) do if e.Status ~= "Failed" then live[#live + 1] = e end end
  table.sort(live, function(x, y) return x.BatchId < y.BatchId end)
  if #live > 1 then two = two + 1 end
  if #(entries[a] or {}) == 0 then none = none + 1 end
  local e = live[1] or (entries[a] or {})[1]
  lines[#lines + 1] = string.format("%s target=%s guid=%s source=%s fwd=%s batch=%s status=%s", a,
    t and t.RecipientTypeDetails or "none",
    (t and t.ExchangeGuid and t.ExchangeGuid ~= ZERO and t.ExchangeGuid:lower() == tostring(s.ExchangeGuid):lower())
      and "source" or "other", s.RecipientTypeDetails, tostring(s.ExternalEmailAddress or "-"),
    e and e.BatchId or "-", e and e.Status or "-")
end
local batches = {}
for name, b in pairs(tgt.exo.batches or {}) do
  if not b._graph_job then batches[#batches + 1] = name end
end
table.sort(batches)
local n = 0
for _ in pairs(tgt.exo.migration_users or {}) do n = n + 1 end
for _, l in ipairs(lines) do print(l) end
print("batches: " .. table.concat(batches, ","))
print("users in two batches: " .. two)
print("users in no batch: " .. none)
print("migration users: " .. n)
