# CLI transcripts: commands, exit codes and usage errors.
. tests/cli/lib.sh
TEST=cli

t2t_run -e 'print(require("cjson").encode({a=1}))'
expect_rc 0 "-e runs Lua"; expect_out '{"a":1}' "cjson is built in"

t2t_run version
expect_rc 0 "version"; expect_out "t2t $(cat VERSION)" "version prints the VERSION file"

t2t_run --help
expect_rc 0 "--help"; expect_out "exit codes: 0 ok, 1 failure, 2 usage error, 3 partial" "--help documents exit codes"

t2t_run list
expect_rc 0 "list"; expect_out "doctor" "list names the doctor runbook"

t2t_run help doctor
expect_rc 0 "help doctor"; expect_out "--strict, --no-strict" "help shows a boolean flag and its negation"

t2t_run run doctor --bogus 1
expect_rc 2 "unknown runbook parameter"; expect_err "unknown parameter --bogus" "the message names the parameter"

t2t_run run doctor --ca-file /nonexistent
expect_rc 2 "unreadable file parameter"; expect_err "--ca-file: cannot read file '/nonexistent'" "file params are checked"

t2t_run run nosuch
expect_rc 2 "unknown runbook"; expect_err "no runbook named 'nosuch'" "says which runbook is missing"

t2t_run frobnicate
expect_rc 2 "unknown command"; expect_err "unknown command 'frobnicate'" "names the command"

t2t_run --output xml list
expect_rc 2 "bad global option value"; expect_err "'xml' is not one of json, text" "lists the choices"

t2t_run --config /nonexistent/t2t.lua --profile x -e 'print(1)'
expect_rc 2 "--profile with no config file"; expect_err "cannot read the config file /nonexistent/t2t.lua" "never silently ignored"

t2t_run -e 'error("boom")'
expect_rc 1 "a Lua error exits 1"; expect_err "boom" "and prints the message"

T2T_LIB_DIR=/nonexistent "$T2T" run doctor >"$OUT" 2>"$ERR" </dev/null; RC=$?
expect_rc 1 "doctor fails when the plugins are missing"; expect_out "[Failed]  HTTP client -- cannot load it" "and says which"

t2t_run run doctor --output json
expect_rc 0 "json output"; expect_out '"runbook":"doctor"' "one JSON document"

t2t_run -e 'local r = require "t2t.runbook"; print(#r.names())'
expect_rc 0 "runbook names"

printf 'local x = 20\nprint(x + 22)\n' > "$OUT.lua"
"$T2T" < "$OUT.lua" >"$OUT" 2>"$ERR"; RC=$?
expect_rc 0 "stdin as a script"; expect_out "42" "non-TTY stdin runs as a script"
printf 'print(arg[1], arg[0] ~= nil)\n' > "$OUT.lua"
t2t_run "$OUT.lua" hello
expect_rc 0 "FILE.lua runs a script"; expect_out "hello	true" "with arg set"
rm -f "$OUT.lua"

# a runbook that fails with a message, one that reports partial results, strict globals
RB=$(mktemp -d)
cat > "$RB/partial.lua" <<'EOR'
return runbook { name = "partial", description = "items", run = function(ctx)
  ctx:item("a", true); ctx:item("b", false, "no licence") end }
EOR
cat > "$RB/fails.lua" <<'EOR'
return runbook { name = "fails", description = "fails", run = function(ctx)
  ctx:fail("the scope group %s is not mail-enabled: run setup-source", "G") end }
EOR
cat > "$RB/strict.lua" <<'EOR'
return runbook { name = "strict", description = "typo", run = function(ctx) return undefined_thing end }
EOR
t2t_run run "$RB/partial.lua"
expect_rc 3 "some items failed"; expect_out "items failed  1" "summary counts items"
t2t_run run "$RB/fails.lua"
expect_rc 1 "ctx:fail"; expect_err "the scope group G is not mail-enabled: run setup-source" "message as given"
expect_no "stack traceback" "no traceback for an expected failure"
t2t_run run "$RB/strict.lua"
expect_rc 1 "strict globals"; expect_err "undefined global 'undefined_thing'" "names the global"
cat > "$RB/change.lua" <<'EOR'
return runbook { name = "change", description = "one change", run = function(ctx)
  ctx.plan:change { kind = "create", target = "group 'G'", tenant = "contoso", after = { name = "G" },
                    apply = function() ctx:say("APPLIED") return true, "rid-1" end } end }
EOR
t2t_run run "$RB/change.lua" --plan
expect_rc 0 "--plan"; expect_out "would + create group 'G' [contoso]" "plan shows the change"
expect_no "APPLIED" "and does not apply it"; expect_out "changes planned  1" "summary counts planned changes"
t2t_run run "$RB/change.lua" --audit "$RB/audit.jsonl"
expect_rc 0 "--audit"; expect_out "APPLIED" "the change is applied"
if grep -q '"request_id":"rid-1"' "$RB/audit.jsonl"; then ok "audit line written"; else notok "audit line written"; fi
cat > "$RB/simrb.lua" <<'EOR'
return runbook { name = "simrb", description = "sees --sim", run = function(ctx)
  ctx:say("sim running: %s", tostring(require("t2t.sim").current() ~= nil)) end }
EOR
t2t_run run "$RB/simrb.lua" --sim
expect_rc 0 "--sim after the runbook name"; expect_out "sim running: true" "starts the simulator before the runbook runs"
rm -rf "$RB"

# A sanitized build carries the runtime option that keeps LSan's tracer from crashing on
# dynamic TLS at exit (core/sanitize.c); a plain build has no sanitizer flags to print.
case "$T2T" in *san/*)
  ASAN_OPTIONS=help=1 "$T2T" -e 'return' >"$OUT" 2>"$ERR" </dev/null
  if grep -A1 '^[[:space:]]*intercept_tls_get_addr$' "$ERR" | grep -q 'Current Value: false'; then
    ok "sanitized build: intercept_tls_get_addr is off by default"
  else notok "sanitized build: intercept_tls_get_addr is off by default"; fi ;;
esac
