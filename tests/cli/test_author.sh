# What a runbook author gets (issue 15): connect() in runbook files as in -e and the REPL, the
# AZURE_* variables as a profile everywhere, temporary directories that go away (Ctrl-C too),
# and the .luacheckrc stanza docs/runbooks.md tells users to copy.
. tests/cli/lib.sh
TEST=author
D=$(mktemp -d)
trap 'rm -rf "$D" "$OUT" "$ERR"' EXIT

# connect() is a global in runbook files, with the run's options (here --sim)
cat > "$D/who.lua" <<'EOF'
return runbook {
  name = "who", description = "Which tenant?",
  params = { { name = "tenant", type = "string" } },
  run = function(ctx, p)
    local c = connect(p.tenant)
    local org = assert(c.graph:get("/organization"))
    ctx:say("tenant %s is %s", c.profile.name, org.value[1].displayName)
  end,
}
EOF
t2t_run run "$D/who.lua" --sim
expect_rc 0 "connect() in a runbook file"; expect_out "tenant contoso is Contoso" "reaches the simulated tenant (default contoso)"
t2t_run run "$D/who.lua" --sim --tenant fabrikam
expect_out "tenant fabrikam is" "and the one named"
t2t_run --sim -e 'print(connect("fabrikam").profile.name)'
expect_out "fabrikam" "the same connect() in -e"
t2t_run run "$D/who.lua" --sim --tenant nosuch
expect_rc 2 "connect() to an unknown tenant in a runbook is a usage error"
expect_err "the simulator has no tenant 'nosuch'" "naming it"

# AZURE_* work wherever a profile does: -e, a runbook, --profile env, doctor (no network needed
# to build the clients; the secret is read from the variable and never printed)
export AZURE_TENANT_ID=contoso.onmicrosoft.com AZURE_CLIENT_ID=11111111-2222-3333-4444-555555555555
export AZURE_CLIENT_SECRET=azure-env-secret-value-123
t2t_run -e 'local c = connect(); print(c.profile.name, c.profile.tenant, c.profile.client_id); print(c.profile)'
expect_rc 0 "AZURE_* in -e"; expect_out "env	contoso.onmicrosoft.com	11111111-2222-3333-4444-555555555555" "connect() with no name uses them"
expect_no "azure-env-secret-value-123" "without printing the secret"
cat > "$D/env.lua" <<'EOF'
return runbook { name = "env", description = "d", run = function(ctx)
  ctx:say("profile %s for %s", connect().profile.name, connect().profile.tenant) end }
EOF
t2t_run run "$D/env.lua"
expect_out "profile env for contoso.onmicrosoft.com" "AZURE_* in a runbook"
t2t_run --profile env -e 'print(connect().profile.client_id)'
expect_out "11111111-2222-3333-4444-555555555555" "--profile env names them"
t2t_run doctor
expect_out "[Passed]  profile 'env (AZURE_* variables)': secret credential for contoso.onmicrosoft.com" "doctor checks them"
unset AZURE_CLIENT_SECRET
t2t_run -e 'connect()'
expect_rc 2 "AZURE_* without a secret"; expect_err "set AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH" "says what is missing"
unset AZURE_TENANT_ID AZURE_CLIENT_ID

# ctx:tempdir() goes away when the run ends, and on Ctrl-C
cat > "$D/tmp.lua" <<'EOF'
return runbook { name = "tmp", description = "d", params = { { name = "wait", type = "number", default = 0 } },
  run = function(ctx, p)
    local dir = ctx:tempdir()
    local f = assert(io.open(dir .. "/secret", "w")); f:write("x"); f:close()
    ctx:say("DIR=%s", dir); io.stdout:flush()
    if p.wait > 0 then require("t2t").sleep(p.wait) end
  end }
EOF
t2t_run run "$D/tmp.lua"
dir=$(sed -n 's/^DIR=//p' "$OUT")
if [ -n "$dir" ] && [ ! -e "$dir" ]; then ok "a runbook's temporary directory is removed at the end"; else notok "a runbook's temporary directory is removed at the end ($dir)"; fi
TMPDIR="$D" "$T2T" run "$D/tmp.lua" --wait 30 >"$OUT" 2>"$ERR" </dev/null &
pid=$!
i=0; while [ $i -lt 150 ] && ! grep -q '^DIR=' "$OUT"; do sleep 0.1; i=$((i + 1)); done
dir=$(sed -n 's/^DIR=//p' "$OUT")
case "$dir" in "$D"/t2t-tmp-*) ok "under \$TMPDIR" ;; *) notok "under \$TMPDIR ($dir)" ;; esac
kill -INT $pid; wait $pid; RC=$?
if [ -n "$dir" ] && [ ! -e "$dir" ]; then ok "and removed on Ctrl-C too"; else notok "and removed on Ctrl-C too ($dir)"; fi
expect_rc 1 "an interrupted run fails"
TMPDIR="$D" "$T2T" run "$D/tmp.lua" --wait 30 >"$OUT" 2>"$ERR" </dev/null &
pid=$!
i=0; while [ $i -lt 150 ] && ! grep -q '^DIR=' "$OUT"; do sleep 0.1; i=$((i + 1)); done
dir=$(sed -n 's/^DIR=//p' "$OUT")
kill -TERM $pid; wait $pid; RC=$?
if [ -n "$dir" ] && [ ! -e "$dir" ]; then ok "kill (SIGTERM) removes it too"; else notok "kill (SIGTERM) removes it too ($dir)"; fi
expect_rc 1 "a killed run fails"; expect_err "t2t: tmp: interrupted!" "and says it was interrupted (no source position)"

# a plain pcall cannot swallow the interruption: the run stops, it does not carry on
cat > "$D/swallow.lua" <<'EOF'
return runbook { name = "swallow", description = "d",
  run = function(ctx)
    local t2t = require "t2t"
    ctx:say("READY"); io.stdout:flush()
    local t0, caught = t2t.now(), 0
    while t2t.now() - t0 < 10 do
      local ok = pcall(function() local x = 0 for j = 1, 1000 do x = x + j end return x end)
      if not ok then caught = caught + 1 end
    end
    ctx:say("carried on after catching %d", caught)
  end }
EOF
"$T2T" run "$D/swallow.lua" >"$OUT" 2>"$ERR" </dev/null &
pid=$!
i=0; while [ $i -lt 150 ] && ! grep -q '^READY' "$OUT"; do sleep 0.1; i=$((i + 1)); done
kill -TERM $pid; wait $pid; RC=$?
expect_rc 1 "a run whose pcall catches the interruption still stops"
expect_no "carried on" "and does not carry on"; expect_err "t2t: swallow: interrupted!" "it says it was interrupted"

# kill during the demo: the runbook it is running stops, and so does the demo (no later step
# runs on a half-done one), its simulator and hand-off directory removed
TMPDIR="$D" "$T2T" run demo --users 3 >"$OUT" 2>"$ERR" </dev/null &
pid=$!
i=0; while [ $i -lt 100 ] && ! grep -q '^Hand-off and secret files in' "$OUT"; do sleep 0.1; i=$((i + 1)); done
dir=$(sed -n 's/^Hand-off and secret files in \([^ ]*\).*/\1/p' "$OUT")
kill -TERM $pid; wait $pid; RC=$?
expect_rc 1 "the demo, killed, fails"
if [ "$(tail -1 "$ERR")" = "t2t: demo: interrupted!" ] && ! grep -v ': interrupted!$' "$ERR" | grep -q '^t2t: '; then
  ok "the demo stops with the step it was running (no later step fails on a half-done one)"
else notok "the demo stops with the step it was running"; sed 's/^/#   /' "$ERR" | head -5; fi
case "$dir" in "$D"/t2t-demo-*) [ ! -e "$dir" ] && ok "and its hand-off directory is removed" || notok "and its hand-off directory is removed ($dir)" ;;
  *) notok "the demo's hand-off directory under \$TMPDIR ($dir)" ;; esac

# the demo's hand-off and (simulated) secret files go with it
t2t_run run demo --users 3
dir=$(sed -n 's/^Hand-off and secret files in \([^ ]*\).*/\1/p' "$OUT")
expect_rc 0 "the demo"
if [ -n "$dir" ] && [ ! -e "$dir" ]; then ok "the demo leaves no temporary files"; else notok "the demo leaves no temporary files ($dir)"; fi

# the stanza docs/runbooks.md gives users for their own .luacheckrc checks the examples
if command -v luacheck >/dev/null 2>&1; then
  sed -n '/^-- .luacheckrc beside your runbooks/,/^```$/p' docs/runbooks.md | grep -v '^```' > "$D/.luacheckrc"
  cp examples/set-attribute.lua examples/missing-x500.lua "$D/"
  printf 'return runbook { name = "typo", description = "d", run = function(ctx) ctx:say(tostrng(1)) end }\n' > "$D/typo.lua"
  if (cd "$D" && luacheck --no-color -q set-attribute.lua missing-x500.lua >/dev/null 2>&1); then ok "the documented .luacheckrc stanza passes the examples"
  else notok "the documented .luacheckrc stanza passes the examples"; fi
  if (cd "$D" && luacheck --no-color --formatter plain typo.lua 2>&1 | grep -q "accessing undefined variable 'tostrng'"); then ok "and catches a misspelt global"
  else notok "and catches a misspelt global"; fi
else echo "ok - $TEST: luacheck stanza # SKIP luacheck not installed"; fi

# the guide shows the examples as they are shipped (the file less its opening comments)
for ex in set-attribute missing-x500; do
  awk -v f="examples/$ex.lua" 'index($0, "[`" f "`]") { want = 1 } want && /^```lua$/ { on = 1; next }
       on && /^```$/ { exit } on { print }' docs/runbooks.md > "$D/doc.lua"
  awk 'started || !/^--/ { started = 1; print }' "examples/$ex.lua" | sed '/./,$!d' > "$D/file.lua"
  if [ -s "$D/doc.lua" ] && cmp -s "$D/doc.lua" "$D/file.lua"; then ok "docs/runbooks.md shows examples/$ex.lua as shipped"
  else notok "docs/runbooks.md shows examples/$ex.lua as shipped"; diff "$D/doc.lua" "$D/file.lua" | head -5 | sed 's/^/#   /'; fi
done

# the man page names exactly the runbooks there are, and every command it lists exists
sed -n '/^\.SH RUNBOOKS/,/^\.SH /p' docs/t2t.1 | sed -n '/^\.TP/{n;s/^\.B //p}' | sort > "$D/man-runbooks"
"$T2T" list </dev/null | awk '{print $1}' | sort > "$D/list"
if [ -s "$D/list" ] && cmp -s "$D/man-runbooks" "$D/list"; then ok "the man page lists exactly the bundled runbooks"
else notok "the man page lists exactly the bundled runbooks"; diff "$D/man-runbooks" "$D/list" | sed 's/^/#   /'; fi
for c in list doctor version; do
  if grep -q "^\.B t2t $c" docs/t2t.1 && "$T2T" $c >/dev/null 2>&1 </dev/null; then ok "man page command '$c' works"
  else notok "man page command '$c' works"; fi
done
