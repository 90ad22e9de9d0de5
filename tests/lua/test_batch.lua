-- t2t.batch's pure parts: planning (delegates kept together, links cut and moves reported,
-- sizes, pinned users), the batches file, the status shapes and summary, the §8 catalogue, the
-- screen, the report rows, the HTML report and its charts, times as admins write them.
local lu = require "luaunit"
local plan = require "t2t.batch.plan"
local journal = require "t2t.batch.journal"
local status = require "t2t.batch.status"
local fixes = require "t2t.batch.fixes"
local screen = require "t2t.batch.screen"
local report = require "t2t.batch.report"
local html = require "t2t.batch.html"
local charts = require "t2t.batch.charts"
local session = require "t2t.batch.session"

local function user(i, batch, delegates)
  local a = string.format("u%03d", i)
  return { target = a .. "@fabrikam.com", source = a .. "@contoso.com", batch = batch, names = { a },
           delegates = delegates or {} }
end

local function where(result)
  local out = {}
  for _, b in ipairs(result.batches) do
    for _, u in ipairs(b.users) do out[u.target:sub(1, 4)] = b.name end
  end
  return out
end

TestBatchPlan = {}

function TestBatchPlan.test_delegate_chain_moves_to_the_majority_batch()
  local users = {}
  for i = 1, 10 do users[i] = user(i, i <= 5 and "wave1" or "wave2") end
  users[7].delegates.FullAccess = { "u002" }                  -- u002 (wave1) on u007 (wave2)
  users[8].delegates.SendOnBehalf = { "u007@contoso.com" }
  users[9].delegates.Calendar = { "u008" }
  local r = plan.make(users, {})
  local w = where(r)
  lu.assertEquals(w.u002, "wave2", "the chain u002-u007-u008-u009 is mostly in wave2")
  lu.assertEquals(w.u001, "wave1")
  lu.assertEquals(#r.moved, 1)
  lu.assertEquals(r.moved[1].user.target, "u002@fabrikam.com")
  lu.assertEquals(#r.cut, 0)
  lu.assertStrContains(plan.describe(r)[1], "u002@fabrikam.com: in wave2, not wave1")
end

function TestBatchPlan.test_keep_batches_cuts_instead_of_moving()
  local users = { user(1, "a"), user(2, "b", { FullAccess = { "u001" } }) }
  local r = plan.make(users, { keep = true })
  lu.assertEquals(where(r), { u001 = "a", u002 = "b" })
  lu.assertEquals(#r.moved, 0)
  lu.assertEquals(#r.cut, 1)
  lu.assertEquals(r.cut[1].kind, "FullAccess")
end

function TestBatchPlan.test_sizes_balanced_and_groups_split_only_when_too_big()
  local users = {}
  for i = 1, 25 do users[i] = user(i) end
  for i = 2, 8 do users[i].delegates.FullAccess = { "u001" } end   -- a group of 8
  local r = plan.make(users, { size = 10, prefix = "w" })
  lu.assertEquals(#r.batches, 3)
  local w = where(r)
  for i = 2, 8 do lu.assertEquals(w[string.format("u%03d", i)], w.u001, "the group stays together") end
  for _, b in ipairs(r.batches) do lu.assertTrue(#b.users <= 10, b.name .. " over the size") end
  -- a group larger than a batch is cut, and the cuts are reported
  local big = {}
  for i = 1, 12 do big[i] = user(i, nil, i > 1 and { SendAs = { string.format("u%03d", i - 1) } } or nil) end
  r = plan.make(big, { size = 5 })
  lu.assertEquals(#r.batches, 3)
  lu.assertEquals(#r.cut, 2, "a chain of 12 in batches of 5 is cut twice")
end

function TestBatchPlan.test_pinned_users_stay_and_pull_their_group()
  local users = { user(1, "wave1"), user(2, nil, { FullAccess = { "u001" } }), user(3) }
  local r = plan.make(users, { pinned = { ["u001@fabrikam.com"] = "wave1-retry1" }, prefix = "n" })
  local w = where(r)
  lu.assertEquals(w.u001, "wave1-retry1")
  lu.assertEquals(w.u002, "wave1-retry1")
  lu.assertEquals(w.u003, "n-1")
end

function TestBatchPlan.test_outside_delegates_and_the_limit()
  local r = plan.make({ user(1, nil, { FullAccess = { "boss@contoso.com" } }) }, {})
  lu.assertEquals(#r.outside, 1)
  lu.assertEquals(r.outside[1].delegate, "boss@contoso.com")
  lu.assertEquals(#plan.make({ user(1) }, { size = 5000 }).batches, 1)
  local many = {}
  for i = 1, 2001 do many[i] = user(i) end
  lu.assertEquals(#plan.make(many, {}).batches, 2, "at most 2,000 a batch")
end

TestBatchJournal = {}

function TestBatchJournal.test_save_load_and_retry_names()
  local dir = os.tmpname()
  os.remove(dir)
  local path = dir .. ".batches.json"
  local J = journal.new(path, { backend = "exo" })
  J:add_batch { name = "wave1", created_by = "plan" }
  J:set_user { target = "A@fabrikam.com", batch = "wave1", source = "a@contoso.com" }
  J:set_user { target = "b@fabrikam.com", batch = "wave1" }
  assert(J:save())
  local st = require("t2t.core.fs").mode(path)
  lu.assertEquals(st & tonumber("777", 8), tonumber("600", 8))
  local K = assert(journal.load(path))
  lu.assertEquals(#K:members("wave1"), 2)
  lu.assertEquals(K:user("a@fabrikam.com").source, "a@contoso.com")
  lu.assertEquals(K:retry_name("wave1"), "wave1-retry1")
  K:add_batch { name = "wave1-retry1", of = "wave1" }
  lu.assertEquals(K:retry_name("wave1-retry1", { ["wave1-retry2"] = true }), "wave1-retry3")
  lu.assertEquals(K:pinned()["b@fabrikam.com"], "wave1")
  local f = io.open(path, "w")
  f:write('{"t2t": "users-collection"}')
  f:close()
  local nothing, err = journal.load(path)
  lu.assertNil(nothing)
  lu.assertStrContains(err, "is not a t2t batches file")
  os.remove(path)
  lu.assertNil(journal.load(path))
end

-- migrate-batch's users: the batches file's, then the new ones it does not know.  A user
-- batch-fix --leave-out took out stays out on a re-run with the same input (a re-run once put
-- it back into its batch), until --retry-left-out.
function TestBatchJournal.test_merge_keeps_left_out_users_out()
  local users = require "t2t.batch.users"
  local J = journal.new("/nonexistent/b.json", { backend = "exo" })
  J:add_batch { name = "wave1", created_by = "plan" }
  J:set_user { target = "a@fabrikam.com", batch = "wave1", source = "a@contoso.com", exchange_guid = "G-A" }
  J:set_user { target = "h@fabrikam.com", source = "h@contoso.com", left_out = "on hold", left_from = "wave1" }
  local new = { { target = "A@fabrikam.com" }, { target = "h@fabrikam.com" }, { target = "n@fabrikam.com" } }
  local all, out = users.merge(J, new)
  local names = {}
  for _, u in ipairs(all) do names[#names + 1] = u.target end
  lu.assertEquals(names, { "a@fabrikam.com", "n@fabrikam.com" })
  lu.assertEquals(#out, 1)
  lu.assertEquals(out[1].target, "h@fabrikam.com")
  lu.assertStrContains(out[1].reason, "left out by batch-fix --leave-out (on hold)")
  lu.assertStrContains(out[1].reason, "--retry-left-out")
  all, out = users.merge(J, new, true)
  lu.assertEquals(#all, 3)
  lu.assertEquals(#out, 0)
  lu.assertNil(J:user("h@fabrikam.com").left_out)
end

TestBatchStatus = {}

local function entry(addr, st, extra)
  local e = { Identity = addr, BatchId = "b1", Status = st, Guid = addr:sub(1, 4) }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

function TestBatchStatus.test_states_summary_and_failures()
  local us = {
    status.user(entry("a@x", "Syncing")), status.user(entry("b@x", "Synced", { HasUnapprovedSkippedItems = true,
      SkippedItemCount = 4, DataConsistencyScore = "Investigate" })),
    status.user(entry("c@x", "Failed", { ErrorSummary = "Microsoft.Exchange.Migration.MissingExchangeGuidException: x" })),
    status.user(entry("d@x", "Failed", { ErrorSummary = "Microsoft.Exchange.Migration.MigrationPermanentException: " ..
      "The source mailbox 'd' is on hold (litigation hold enabled or in-place holds) and ..." })),
    status.user(entry("e@x", "CompletedWithWarnings")), status.user(entry("f@x", "Queued")),
  }
  status.merge(us[1], { PercentComplete = 40, BytesTransferred = "400 MB (419,430,400 bytes)",
    TotalMailboxSize = "1 GB (1,073,741,824 bytes)", StatusDetail = "StalledDueToTarget_DiskLatency",
    StartTimestamp = "2025-01-01T10:00:00.0000000+00:00" })
  lu.assertEquals(us[1].state, "Stalled")
  lu.assertEquals(us[2].state, "NeedsApproval")
  lu.assertEquals(us[3].exception, "MissingExchangeGuidException")
  lu.assertEquals(us[5].state, "Completed")
  local snap = { batch = status.batch { Identity = "b1", Status = "Syncing", StartDateTime = "2025-01-01T10:00:00Z" },
                 users = us }
  local sum = status.summary(snap, status.time("2025-01-01T10:10:00Z"))
  lu.assertEquals(sum.counts.Stalled, 1)
  lu.assertEquals(sum.counts.Failed, 2)
  lu.assertFalse(sum.settled)
  lu.assertEquals(sum.bytes, 419430400)
  lu.assertTrue(sum.throughput > 0 and sum.eta > 0)
  local keys = {}
  for _, g in ipairs(sum.failures) do keys[#keys + 1] = g.exception end
  table.sort(keys)
  lu.assertEquals(keys, { "MigrationPermanentException: source on hold", "MissingExchangeGuidException",
                          "NeedsApproval", "Stalled" })
  local lines = table.concat(screen.render(snap, sum, { rows = 10 }), "\n")
  lu.assertStrContains(lines, "1 queued  1 stalled  1 needs approval  1 completed  2 failed")
  lu.assertStrContains(lines, "fix: Set-MailUser <user> -ExchangeGuid <source ExchangeGuid>, then resume")
  lu.assertStrContains(lines, "run: t2t run batch-fix --batch b1")
  lu.assertStrContains(lines, "release the hold (a compliance decision)")
  lu.assertStrContains(lines, "StalledDueToTarget_DiskLatency")
end

function TestBatchStatus.test_pick_reads_the_moving_first_and_rotates()
  local us = {}
  for i = 1, 10 do us[i] = status.user(entry("u" .. i .. "@x", i <= 6 and "Syncing" or "Completed")) end
  local cache = {}
  local first = status.pick(us, { detail = 4, cache = cache })
  lu.assertEquals(#first, 4)
  for _, u in ipairs(first) do lu.assertEquals(u.state, "Syncing"); cache[u.address] = { stats = {}, at = 1 } end
  local second = status.pick(us, { detail = 4, cache = cache })
  lu.assertEquals(second[1].state, "Syncing")
  lu.assertNil(cache[second[1].address], "users not read yet go first")
end

TestBatchFixes = {}

function TestBatchFixes.test_catalogue()
  for _, exn in ipairs { "MailboxNotInCrossTenantMigrationScopeException", "AuxArchiveNotFoundInTargetRecipientException",
                         "MailboxIsNotInExpectedDBException", "NotAcceptedDomainException",
                         "SourceAuxArchiveIsProvisionedDuringCrossTenantMovePermanentException",
                         "UserDuplicateInOtherBatchException", "MissingExchangeGuidException",
                         "SourceMailboxAlreadyBeingMovedPermanentException", "UserAlreadyHasDemotedArchiveException",
                         "CrossTenantMigrationWithoutLicensePermanentException" } do
    local i = fixes.info(exn)
    lu.assertNotEquals(i.action, "manual", exn .. " has a documented fix")
    lu.assertTrue(#i.cause > 10 and #i.fix > 10, exn)
  end
  lu.assertEquals(fixes.info("UserAlreadyHasDemotedArchiveException").auto, "flag", "irreversible: only with a flag")
  lu.assertEquals(fixes.command("w1", fixes.info("NeedsApproval")), "t2t run batch-complete --batch w1 --approve-skipped")
  local hold = fixes.info(fixes.key("MigrationPermanentException", "... is on hold (litigation ..."))
  lu.assertEquals(hold.action, "manual")
  lu.assertStrContains(hold.fix, "compliance decision")
  lu.assertNil(fixes.command("w1", hold))
end

-- batch-fix --leave-out: the users nobody can fix now leave their batch, and a batch still moving
-- is started again for the others; a completed one is not (the service refuses it: the run once
-- waited 20 s there for an answer that could not come).
function TestBatchFixes.test_leave_out_starts_only_a_batch_still_moving()
  local fix = require "t2t.batch.fix"
  local J = journal.new("/nonexistent/b.json", { backend = "exo" })
  J:add_batch { name = "w1" }
  J:add_batch { name = "w2" }
  J:set_user { target = "a@fabrikam.com", batch = "w1", exchange_guid = "G1" }
  J:set_user { target = "b@fabrikam.com", batch = "w2", exchange_guid = "G2" }
  local resumed, removed = {}, {}
  local B = { remove_user = function(_, u) removed[#removed + 1] = u.address return true end,
              resume = function(_, name) resumed[#resumed + 1] = name return true end }
  local function failed(addr, b) return { state = "Failed", batch = b, address = addr, exception = "NoSuchFixException" } end
  local res = fix.run({ backend = B, journal = J, opts = { leave_out = true } }, {
    { batch = { name = "w1", status = "CompletedWithErrors" }, users = { failed("a@fabrikam.com", "w1") } },
    { batch = { name = "w2", status = "Syncing" }, users = { failed("b@fabrikam.com", "w2") } } })
  lu.assertEquals({ res[1].result, res[2].result }, { "left out", "left out" })
  lu.assertEquals(removed, { "a@fabrikam.com", "b@fabrikam.com" })
  lu.assertEquals(resumed, { "w2" })
  lu.assertNil(J:user("a@fabrikam.com").batch)
  lu.assertEquals(J:user("a@fabrikam.com").left_from, "w1")
end

TestBatchReport = {}

local function snap_done()
  local us = {}
  for i, st in ipairs { "Completed", "Completed", "Failed", "Syncing" } do
    local u = status.user(entry(string.format("u%d<&\"@x", i), st, st == "Failed" and
      { ErrorSummary = "Microsoft.Exchange.Migration.NotAcceptedDomainException: <script>" } or nil))
    status.merge(u, { PercentComplete = st == "Completed" and 100 or 50, BytesTransferred = "100 B (100 bytes)",
      TotalMailboxSize = "200 B (200 bytes)", StartTimestamp = "2025-01-01T10:00:00Z",
      InitialSeedingCompletedTimestamp = st == "Completed" and "2025-01-01T10:05:00Z" or nil,
      CompletionTimestamp = st == "Completed" and "2025-01-01T10:06:00Z" or nil })
    u.status, u.state = st, st
    us[i] = u
  end
  return { batch = status.batch { Identity = "w<1>", Status = "Syncing", StartDateTime = "2025-01-01T10:00:00Z" }, users = us }
end

function TestBatchReport.test_rows_and_html()
  local snaps = { snap_done() }
  local rows = report.rows(snaps, nil)
  lu.assertEquals(#rows, 4)
  lu.assertEquals(rows[3].Exception, "NotAcceptedDomainException")
  lu.assertStrContains(rows[3].Fix, "remove that proxy")
  local d = report.data(snaps, nil, status.time("2025-01-01T10:10:00Z"))
  lu.assertEquals(d.totals.completed, 2)
  lu.assertEquals(d.failures[1].open, 1)
  local page = html.page(d, rows, { title = "T & <T>", source = "contoso", target = "fabrikam" })
  lu.assertNil(page:find("<script>\"", 1, true))
  lu.assertNil(page:find("u1<&", 1, true), "user data is escaped")
  lu.assertStrContains(page, "u1&lt;&amp;&quot;@x")
  lu.assertNil(page:find("https?://"), "self-contained: no URL")
  lu.assertStrContains(page, "Content-Security-Policy")
  for _, id in ipairs { "chart-progress", "chart-states", "chart-throughput", "chart-failures" } do
    lu.assertStrContains(page, 'id="' .. id .. '"')
  end
  -- every chart announces the series it draws, and draws them
  for svg in page:gmatch("<svg.-</svg>") do
    local want = tonumber(svg:match('data%-series%-count="(%d+)"'))
    local got = select(2, svg:gsub('class="series"', ""))
    lu.assertEquals(got, want, svg:sub(1, 80))
  end
  lu.assertStrContains(charts.progress(d), 'data-series="synced-w&lt;1&gt;"')
end

-- a user batch-fix --leave-out took out of its batch is a LeftOut row (with the batch it left and
-- why), counted apart from the failures batch-fix fixed
function TestBatchReport.test_left_out_users()
  local J = { doc = { users = {
      ["h@x"] = { target = "h@x", source = "h@s", left_from = "w<1>", left_out = "release the hold",
                  left_exception = "MigrationPermanentException: source on hold", left_error = "on hold" },
      ["k@x"] = { target = "k@x", source = "k@s", batch = "w<1>" } },
    history = { { user = "h@x", exception = "MigrationPermanentException: source on hold", result = "left out" },
                { user = "k@x", exception = "MissingExchangeGuidException", result = "resume" },
                { user = "z@x", exception = "NeedsApproval", result = "flag" } } } }
  function J:user(a) return self.doc.users[a:lower()] end
  local snaps = { snap_done() }
  local rows = report.rows(snaps, J)
  lu.assertEquals(#rows, 5)
  lu.assertEquals(rows[5].TargetUser, "h@x")
  lu.assertEquals(rows[5].State, "LeftOut")
  lu.assertEquals(rows[5].Batch, "w<1>")
  lu.assertEquals(rows[5].Error, "on hold")
  lu.assertEquals(rows[5].Fix, "release the hold")
  local d = report.data(snaps, J, status.time("2025-01-01T10:10:00Z"))
  lu.assertEquals(d.totals.left, 1)
  local by = {}
  for _, f in ipairs(d.failures) do by[f.exception] = f end
  lu.assertEquals(by["MigrationPermanentException: source on hold"].left, 1)
  lu.assertEquals(by["MigrationPermanentException: source on hold"].fixed, 0)
  lu.assertEquals(by.MissingExchangeGuidException.fixed, 1)
  lu.assertNil(by.NeedsApproval, "a fix that needed a flag fixed nothing")
  local page = html.page(d, rows, { title = "T", source = "s", target = "t" })
  lu.assertStrContains(page, "left out")
  lu.assertStrContains(charts.failures(d), "1 left out")
end

TestBatchSession = {}

function TestBatchSession.test_times_as_admins_write_them()
  local now = 1735725600                       -- 2025-01-01T10:00:00Z
  lu.assertEquals(session.parse_time("now", now), now)
  lu.assertEquals(session.parse_time("+2h", now), now + 7200)
  lu.assertEquals(session.parse_time("+1d", now), now + 86400)
  lu.assertEquals(session.parse_time("2025-01-01T12:30", now), now + 9000)
  lu.assertEquals(session.parse_time("2025-01-01T12:30:00+02:00", now), now + 1800)
  lu.assertEquals(session.parse_time("2025-01-02", now), now + 50400)
  local t, err = session.parse_time("tomorrow", now)
  lu.assertNil(t)
  lu.assertStrContains(err, "write 2025-03-01T18:00 (UTC), +2h, +1d or now")
end

TestBatchExportRecord = {}

-- Regression: a raw Get-Mailbox page (export-users --all) keeps Exchange's nulls; the record
-- must read them as absent (it called string.lower on one).
function TestBatchExportRecord.test_nulls_are_absent()
  local null = require("cjson").null
  local r = require("t2t.mailuser.export").record { Name = "a", PrimarySmtpAddress = "a@x.com", ExchangeGuid = "g",
    DisabledArchiveGuid = null, ArchiveGuid = null, InPlaceHolds = null, ExternalDirectoryObjectId = "id1" }
  lu.assertNil(r.DisabledArchiveGuid)
  lu.assertNil(r.ArchiveGuid)
  lu.assertEquals(r.ExternalDirectoryObjectId, "id1")
end
