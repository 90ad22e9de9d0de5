-- In a write-ahead audit file (t2t.plan), is every licence assigned after its mail user's
-- ExchangeGuid was stamped?  build/t2t tests/e2e/users_audit.lua AUDIT -> exit 0 | 1 (and why)
local cjson = require "cjson"
local stamped, bad, licences = {}, {}, 0
for line in io.lines(arg[1]) do
  local e = cjson.decode(line)
  local target = e.target or ""
  -- a stamp counts once its outcome is ok; a licence is checked when it is attempted (intent)
  if e.operation == "ensure_mailuser" and e.kind == "update" and e.phase == "outcome" and e.result == "ok" then
    stamped[target:match("%((.-)%)$") or ""] = true
  elseif e.operation == "license" and e.kind ~= "update" and e.phase == "intent" then
    local who = target:match("for (%S+)$")
    licences = licences + 1
    if not stamped[who or ""] then bad[#bad + 1] = who end
  end
end
if licences == 0 then print("no licence in the audit") os.exit(1) end
if #bad > 0 then print("licensed before the GUID: " .. table.concat(bad, ", ")) os.exit(1) end
