-- The batch e2e test's clean run, in one process (one simulator for every runbook, as a project's
-- days would be): plan, make, watch, fix, fix with the flags, complete, post-migration, the
-- report, and migrate-batch once more.  Prints TAP lines; the state is saved to STATE at the end.
--   build/t2t tests/e2e/batch_clean.lua STATE.json DIR
local state, dir = arg[1], arg[2]
local lib = require "tests.e2e.batch_lib"
local check = lib.tap("batch")
local s = assert(require("t2t.sim").start { state = state, dns = false })
local MAP = { "--domain-map", "contoso.com=fabrikam.com" }
local function has(out, text) return out:find(text, 1, true) ~= nil end
local function with(t, more) for _, x in ipairs(more or {}) do t[#t + 1] = x end return t end
local BATCHES = dir .. "/t2t-batches.json"
local function run(name, args, extra) return lib.capture(s, name, with(args, { "--batches", BATCHES }), extra) end
local function watch() return run("batch-status", { "--watch", "--interval", "0.3", "--timeout", "60", "--rows", "0" }) end

local ok, err = pcall(function()
  -- plan, then make
  local code, out = run("migrate-batch", with({ "--from", dir .. "/coll.jsonl" }, MAP), { plan = true })
  check(code == 0 and has(out, "would + create migration batch 'wave1'"), "plan: --plan lists the batches it would make", out)
  check(io.open(BATCHES) == nil, "plan: --plan writes no batches file")
  code, out = run("migrate-batch", with({ "--from", dir .. "/coll.jsonl" }, MAP), { audit = dir .. "/a1" })
  check(code == 0, "migrate-batch: two batches made from the Batch column", out)
  check(has(out, "u010@fabrikam.com: in wave2, not wave1 -- it shares permissions with users there"),
        "planning: the delegate chain across the batches is kept together (u010 moved to wave2)", out)
  check(has(out, "wave1                           99 users") and has(out, "wave2                          101 users"),
        "planning: wave1 keeps 99 users, wave2 takes 101", out)
  local mode = require("t2t.core.fs").mode(BATCHES)
  check(mode and mode & tonumber("777", 8) == tonumber("600", 8), "the batches file is mode 0600")

  -- watch: every exception, explained with its fix and the command
  code, out = watch()
  check(code == 3, "batch-status: some users failed (exit 3)", out)
  for _, x in ipairs { "MailboxNotInCrossTenantMigrationScopeException", "MailboxIsNotInExpectedDBException",
      "NotAcceptedDomainException", "SourceAuxArchiveIsProvisionedDuringCrossTenantMovePermanentException",
      "UserDuplicateInOtherBatchException", "MissingExchangeGuidException", "SourceMailboxAlreadyBeingMovedPermanentException",
      "UserAlreadyHasDemotedArchiveException", "CrossTenantMigrationWithoutLicensePermanentException", "NeedsApproval" } do
    check(has(out, x .. " --"), "status: " .. x .. " is reported with its cause", out)
  end
  check(has(out, "fix: Set-MailUser <user> -ExchangeGuid <source ExchangeGuid>, then resume"), "status: the documented fix is shown")
  check(has(out, "run: t2t run batch-fix --batch wave1\n"), "status: the t2t command that applies it is shown")
  check(has(out, "run: t2t run batch-fix --batch wave1 --enable-archive"), "status: the demoted archive's fix needs a flag")

  -- fix, watch, fix what is left with the flags
  code, out = run("batch-fix", {}, { audit = dir .. "/a1" })
  check(code == 3, "batch-fix: two users need a flag (exit 3)", out)
  local function row(u, rest) return has(out, u) and out:match(u:gsub("%p", "%%%0") .. "[^\n]*" .. rest:gsub("%p", "%%%0")) end
  check(row("u065@fabrikam.com", "MissingExchangeGuidException                 fixed, resumed"),
        "batch-fix: MissingExchangeGuid -> Set-MailUser -ExchangeGuid, resumed", out)
  check(has(out, "removed smtp:u075@contoso.com"), "batch-fix: NotAcceptedDomain -> the source-domain proxy removed")
  check(row("u045@fabrikam.com", "fixed, resumed  added to the scope group"), "batch-fix: not in scope -> added to the scope group, resumed")
  check(row("u085@fabrikam.com", "fixed, resumed  licensed"), "batch-fix: no licence -> the cross-tenant licence")
  check(has(out, "taken out of batch eac-pilot; a new batch -> wave1-retry1"), "batch-fix: duplicate -> out of the stale batch, into a new one")
  check(row("u025@fabrikam.com", "in a new batch"), "batch-fix: not in the expected DB -> removed, a new batch")
  check(row("u015@fabrikam.com", "in a new batch"), "batch-fix: already being moved -> removed, a new batch")
  check(row("u035@fabrikam.com", "in a new batch"), "batch-fix: aux archive provisioned -> removed, a new batch")
  check(has(out, "needs --remove-disabled-archive (IRREVERSIBLE"), "batch-fix: the irreversible fix is not applied without its flag")
  out = select(2, watch())
  check(has(out, "AuxArchiveNotFoundInTargetRecipientException --"),
        "status: the aux archive of a user out of scope at the start is reported after its resume", out)
  code, out = run("batch-fix", { "--enable-archive", "--approve-skipped" }, { audit = dir .. "/a1" })
  check(code == 0, "batch-fix with the flags: every user fixed", out)
  check(has(out, "archive enabled and its GUID stamped on the target"), "batch-fix --enable-archive: the demoted archive is fixed")
  check(has(out, "already in the scope group; a new batch -> wave1-retry2"), "batch-fix: AuxArchiveNotFound -> a new batch")
  check(has(out, "4 skipped items approved"), "batch-fix --approve-skipped: the skipped items are approved")

  -- complete, post-migration, report
  code, out = run("batch-complete", { "--wait", "--interval", "0.3", "--timeout", "60" }, { audit = dir .. "/a1" })
  check(code == 0, "batch-complete: every batch completed", out)
  code, out = run("post-migration", {})
  check(code == 0 and has(out, "users converted            200"), "post-migration: 200 users converted on both sides", out)
  check(has(out, 'GrantSendOnBehalfTo: {} -> ["u151@fabrikam.com"]'), "post-migration: Send on Behalf re-stamped for the delegate who moved too", out)
  check(has(out, "Teams: meetings the moved users organised keep their old join links"), "post-migration: what admins must still do")
  code, out = run("batch-report", { "--html", dir .. "/batch-report.html", "--csv", dir .. "/batch-report.csv",
                                    "--json", dir .. "/batch-report.json" })
  check(code == 0, "batch-report: CSV, JSON and HTML written", out)
  local n = 0
  for _ in io.lines(dir .. "/batch-report.csv") do n = n + 1 end
  check(n == 201, "batch-report: one CSV row per user (" .. n .. " lines)")
  local page = io.open(dir .. "/batch-report.html"):read("a")
  check(not page:find("https?://"), "the HTML report names no URL (self-contained)")

  -- a second migrate-batch changes nothing
  code, out = run("migrate-batch", with({ "--from", dir .. "/coll.jsonl" }, MAP), { audit = dir .. "/a2" })
  check(code == 0 and has(out, "users migrated already  200"), "rerun: migrate-batch again: the 200 users are migrated already", out)
  local a2 = io.open(dir .. "/a2")
  check(a2 == nil or a2:read("a") == "", "rerun: a second migrate-batch changes nothing (no audit entry)")
  -- ... and from the users CSV, the source read now: its mailboxes are mail users since the move
  -- (they were once each "the target is a mailbox already", exit 1)
  code, out = run("migrate-batch", with({ "--csv", dir .. "/users.csv" }, MAP), { audit = dir .. "/a3" })
  check(code == 0 and has(out, "users migrated already  200"), "rerun: from the CSV, the source converted: migrated already", out)
  local a3 = io.open(dir .. "/a3")
  check(a3 == nil or a3:read("a") == "", "rerun: from the CSV, nothing changes (no audit entry)")
end)
assert(s:stop())
check(ok, "the clean run ran to its end", err)
