# Ordinary mistakes get one line that names the thing and the fix -- never a traceback (that
# only with --log-level debug) -- and the exit code --help promises (issue 15).
. tests/cli/lib.sh
TEST=errors
D=$(mktemp -d)
trap 'rm -rf "$D" "$OUT" "$ERR"' EXIT
no_traceback() {
  expect_no "stack traceback" "$1: no traceback"
  if grep -qE 't2t/[a-z_/]+\.lua:[0-9]+' "$OUT" "$ERR"; then notok "$1: no t2t source locations"; else ok "$1: no t2t source locations"; fi
}
one_line() { if [ "$(wc -l < "$ERR")" -le 2 ]; then ok "$1: one line"; else notok "$1: one line"; fi; }

# simulator state files that are not one: corrupt, empty, a directory
printf '{bad' > "$D/corrupt.json"; : > "$D/empty.json"; mkdir "$D/dir.json"
for f in corrupt empty dir; do
  t2t_run --sim="$D/$f.json" -e 'print(1)'
  expect_rc 1 "$f state file"; expect_err "$D/$f.json" "$f state file: the message names the file"
  expect_err "move it away to start from a freshly seeded state" "$f state file: and says what to do"
  no_traceback "$f state file"
  case $f in
    empty) expect_err "is empty" "an empty state file is called empty" ;;
    dir) expect_err "it is a directory" "a directory is called a directory" ;;
    corrupt) expect_err "is not a simulator state file" "a corrupt one is called that" ;;
  esac
done
t2t_run sim --state "$D/corrupt.json"
expect_rc 1 "t2t sim --state CORRUPT"
expect_err "t2t: sim: $D/corrupt.json is not a simulator state file" "t2t sim --state CORRUPT: one line that names the file (no server: prefix)"
one_line "t2t sim --state CORRUPT"

# t2t run <directory>, an unknown runbook, a runbook file run as a script
t2t_run run "$D"
expect_rc 2 "run DIRECTORY"; expect_err "$D: it is a directory" "names the directory"
expect_err "bundled runbook's name ('t2t list')" "and what to give instead"; no_traceback "run DIRECTORY"
cat > "$D/hello.lua" <<'EOF'
return runbook {
  name = "hello", description = "Greets someone.",
  params = { { name = "name", type = "string", required = true, help = "who to greet" } },
  run = function(ctx, p) ctx:say("hello, %s", p.name) end,
}
EOF
t2t_run "$D/hello.lua" --name Ada
expect_rc 0 "t2t hello.lua runs the runbook"; expect_out "hello, Ada" "as t2t run does"
t2t_run "$D/hello.lua" --bogus 1
if [ "$(grep -o "t2t help" "$ERR" | wc -l)" = 1 ]; then ok "an unknown parameter points at the help once"
else notok "an unknown parameter points at the help once"; fi
t2t_run "$D/hello.lua"
expect_rc 2 "t2t hello.lua without its parameter"; expect_err "missing required parameter --name" "names it"
expect_err "'t2t help $D/hello.lua' lists the parameters" "and where the help is"; no_traceback "a missing parameter"
t2t_run help "$D/hello.lua"
expect_rc 0 "help hello.lua"; expect_out "t2t run $D/hello.lua [parameters]" "shows the command that works (the file, not its name)"

# Lua errors: the message only; the traceback with --log-level debug
t2t_run -e 'local t = nil; return t.x'
expect_rc 1 "an error in -e code"; expect_err "(command line):1: attempt to index a nil value" "shows the message"
no_traceback "-e error"; one_line "-e error"
t2t_run --log-level debug -e 'error("boom")'
expect_err "stack traceback" "--log-level debug shows the traceback"

# usage errors exit 2, as --help says
t2t_run run setup-target --secret-file "$D/s"
expect_rc 2 "setup-target without --target"; expect_err "which target tenant? pass --target PROFILE" "says which parameter"
t2t_run run setup-target --target nosuch --secret-file "$D/s"
expect_rc 2 "setup-target with an unknown --target"; expect_err "profile 'nosuch'" "names the profile"
t2t_run run verify-setup --sim --handoff "$D/none.json"
expect_rc 2 "verify-setup without a hand-off"; expect_err "which app? pass --handoff FILE or --app-id" "says what to pass"
for r in prepare-users validate-users export-users mail-auth "dkim-setup --domain contoso.com" roles access-check; do
  t2t_run run $r
  expect_rc 2 "$r without a tenant"; expect_err "which" "$r: says which parameter"
done
t2t_run run prepare-users --target nosuch
expect_rc 2 "prepare-users with an unknown --target"; expect_err "profile 'nosuch'" "names the profile"
t2t_run run prepare-users --sim
expect_rc 2 "prepare-users without --csv/--group/--all"; expect_err "which users?" "says what to give"
t2t_run run demo --users -5
expect_rc 2 "demo --users -5"; expect_err "--users must be at least 1, got -5" "says the range"
t2t_run --sim "$D/state.json" -e 'print(1)'
expect_rc 2 "--sim FILE with -e is not ignored"; expect_err "--sim=$D/state.json" "shows the '=' form"
expect_no "^1$" "and runs nothing"

# connect() with nothing configured: the reason and the ways out, not a silent nil
t2t_run -e 'c = connect("contoso")'
expect_rc 2 "connect() with no config"; expect_err "cannot read the config file" "says why"
expect_err "'t2t init' writes one" "and how to get one"; no_traceback "connect() with no config"

# doctor: a command, and it diagnoses a broken config instead of refusing to run
t2t_run doctor
expect_rc 0 "t2t doctor is a command"; expect_out "[Warning] config file" "no config file is a warning"
printf 'return { profiles = { x = { tenant = "t", client_id = "c", secret = "hunter2hunter2hunter2" } } }\n' > "$D/inline.lua"
t2t_run --config "$D/inline.lua" --profile x doctor
expect_rc 1 "doctor with a broken config runs and fails"
expect_out "[Failed]  config file $D/inline.lua is not valid" "it names the file"
expect_out "secrets are never written in the config file" "and what is wrong"
expect_no "hunter2hunter2hunter2" "without echoing the secret"
printf 'return { profiles = { x = { tenant = "t", client_id = "c", secret = "env:T2T_TEST_UNSET_VAR" } } }\n' > "$D/unset.lua"
t2t_run --config "$D/unset.lua" doctor
expect_rc 1 "doctor with a secret variable that is not set"; expect_out "T2T_TEST_UNSET_VAR is not set" "names the variable"

# --version, init
t2t_run --version
expect_rc 0 "--version"; expect_out "t2t $(cat VERSION)" "prints the version"
t2t_run init "$D/new/config.lua"
expect_rc 0 "init FILE"; expect_out "wrote $D/new/config.lua" "says where"
mode=$(stat -c %a "$D/new/config.lua" 2>/dev/null)
if [ "$mode" = 600 ]; then ok "init: the config is 0600"; else notok "init: the config is 0600 (got $mode)"; fi
if grep -q '^    -- contoso = {' "$D/new/config.lua" && grep -q 'secret = "env:' "$D/new/config.lua"; then
  ok "init: the template shows commented profiles with secret references"
else notok "init: the template shows commented profiles with secret references"; fi
t2t_run --config "$D/new/config.lua" doctor
expect_rc 0 "the template is a valid config as written"; expect_out "0 profile(s)" "with no profile yet"
t2t_run init "$D/new/config.lua"
expect_rc 1 "init never overwrites"; expect_err "exists already" "and says so"
XDG_CONFIG_HOME="$D/xdg" "$T2T" init >"$OUT" 2>"$ERR" </dev/null; RC=$?
expect_rc 0 "init with no FILE"; expect_out "wrote $D/xdg/t2t/config.lua" "writes the default config path"
