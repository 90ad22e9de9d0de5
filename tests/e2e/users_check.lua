-- Check a users runbook's --report (JSON) against what the mixed population (users_mixed.json)
-- must give, printing TAP lines:  build/t2t tests/e2e/users_check.lua prepare|validate REPORT.json
local cjson = require "cjson"
local kind, path = arg[1], arg[2]
local f = assert(io.open(path, "r"))
local rows = cjson.decode(f:read("a"))
f:close()
local by = {}
for _, r in ipairs(rows) do by[(r.SourceUser or ""):lower():match("^([^@]+)") or ""] = r end

local PREPARE = {   -- user -> expected status, and a phrase of its message
  ok1 = { "ok" }, ["d'arcy.nunez"] = { "ok" }, shared1 = { "ok" }, room1 = { "ok" }, ctudmsrc = { "ok" },
  aux13 = { "ok" }, lit = { "ok" }, delay = { "ok" }, delayrel = { "ok" }, tag = { "ok" }, inplace = { "ok" },
  ediscovery = { "ok" }, orghold = { "ok" }, substrate = { "ok" }, dumpster = { "ok" }, demoted = { "ok" },
  contact = { "ok", "mail contact 'Contact (Contoso)'" },
  synced = { "failed", "synchronised from on-premises" }, prev = { "failed", "was a UserMailbox before" },
  mbx = { "failed", "already has a mailbox" }, dupe = { "failed", "is already on MailUser 'dupe.other'" },
  coll1 = { "failed", "two sources cannot share one target" }, coll2 = { "failed", "two sources cannot share one target" },
  nobody = { "failed", "wasn't found on the SOURCE tenant" },
}
local VALIDATE = {  -- user -> the rules (numbers) it must fail, none = ready
  ok1 = {}, ["d'arcy.nunez"] = {}, shared1 = {}, room1 = {}, ctudmsrc = {}, contact = {}, aux13 = { 2 },
  lit = { 4 }, delay = { 4 }, delayrel = { 4 }, tag = { 4 }, inplace = { 4 }, ediscovery = { 4 }, orghold = { 4 },
  substrate = { 5 }, outscope = { 6 }, dumpster = { 7 }, demoted = { 16 },
  -- prepare-users stopped at these (planted) target problems: no licence, not in the scope group
  synced = { 3, 6, 8, 9, 10, 11, 12, 14 }, prev = { 3, 6, 8, 10, 15 }, dupe = { 3, 6, 10 },
  mbx = { 1 }, coll1 = { 1 }, coll2 = { 1 }, nobody = { 1 },
}
local function ok(cond, name, detail)
  io.write(cond and "ok" or "not ok", " - users: ", kind, ": ", name, "\n")
  if not cond and detail then io.write("#   ", tostring(detail):gsub("\n", "\n#   "), "\n") end
end
local want = kind == "prepare" and PREPARE or VALIDATE
local users = {}
for u in pairs(want) do users[#users + 1] = u end
table.sort(users)
for _, u in ipairs(users) do
  local r, w = by[u], want[u]
  if not r then
    ok(false, u .. " has a row", "no row in " .. path)
  elseif kind == "prepare" then
    ok(r.Status == w[1] and (not w[2] or (r.Problems or ""):find(w[2], 1, true) ~= nil),
       string.format("%s is %s%s", u, w[1], w[2] and (" (" .. w[2] .. ")") or ""), cjson.encode(r))
    if w[1] == "failed" then ok((r.Fix or "") ~= "", u .. " says how to fix it", cjson.encode(r)) end
  else
    local got = {}
    for part in ((r.Problems or "") .. " | "):gmatch("(.-) | ") do
      local n = not part:match("^warning:") and part:match("^%[(%d+) ")
      if n then got[#got + 1] = tonumber(n) end
    end
    table.sort(got)
    local expect = table.concat(w, ",")
    ok(table.concat(got, ",") == expect and r.Status == (#w == 0 and "ready" or "not ready"),
       string.format("%s %s", u, #w == 0 and "is ready" or ("fails rule(s) " .. expect)), cjson.encode(r))
    if #w > 0 then ok((r.Fix or "") ~= "", u .. " has a fix for each failure", cjson.encode(r)) end
  end
end
if kind == "validate" then
  local ex = by["outscope"] and by["outscope"].Exception or ""
  ok(ex:find("MailboxNotInCrossTenantMigrationScopeException", 1, true) ~= nil,
     "the scope failure names the exception the move would raise", ex)
  local d = by["d'arcy.nunez"] and by["d'arcy.nunez"].Problems or ""
  ok(d:find("delegates split: outsider has Send on Behalf", 1, true) ~= nil, "a delegate outside the list is warned about", d)
  local s = by["synced"] and by["synced"].Fix or ""
  ok(s:find("on-premises", 1, true) ~= nil, "a dir-synced target's fixes are on-premises ones", s)
end
