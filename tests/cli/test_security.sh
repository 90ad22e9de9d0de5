# Security regressions at the command line (issue 16; docs/security.md): planted modules in
# the current directory, hostile or broken config files, files that would block or exhaust
# memory, the simulator's control key and --write-config, logging and TLS-key warnings.
. tests/cli/lib.sh
TEST=security
T2T_ABS=$(cd "$(dirname "$T2T")" && pwd)/$(basename "$T2T")
# t2t_limited ARGS...: t2t_run with a time limit, for inputs that used to block forever
t2t_limited() { timeout 30 "$T2T" "$@" >"$OUT" 2>"$ERR" </dev/null; RC=$?; }
D=$(mktemp -d)
trap 'rm -rf "$D" "$OUT" "$ERR"; [ -n "$SIM" ] && kill -INT $SIM 2>/dev/null' EXIT

# 5. Code in the current directory never runs: a planted ./t2t/NAME.lua for every module name
# the REPL offers is not loaded by -e, stdin or the REPL's autoload.
mkdir -p "$D/cwd/t2t"
for m in dkim mailuser batch roles csv dns graph; do
  echo "io.open('$D/pwned-$m', 'w'):close() return {}" > "$D/cwd/t2t/$m.lua"
done
echo "io.open('$D/pwned-plain', 'w'):close() return {}" > "$D/cwd/helper.lua"
(cd "$D/cwd" && env -u LUA_PATH -u LUA_PATH_5_4 -u LUA_CPATH -u LUA_CPATH_5_4 "$T2T_ABS" \
  -e 'print(type(dkim), type(mailuser), type(batch), type(roles), type(csv), type(dns))' \
  -e 'print(pcall(require, "helper"))' >"$OUT" 2>"$ERR" </dev/null)
if ls "$D"/pwned-* >/dev/null 2>&1; then notok "no planted ./t2t/*.lua runs from -e ($(ls "$D" | tr '\n' ' '))"
else ok "no planted ./t2t/*.lua runs from -e"; fi
(cd "$D/cwd" && echo 'print(dkim, roles)' | env -u LUA_PATH -u LUA_PATH_5_4 "$T2T_ABS" >"$OUT" 2>"$ERR")
if ls "$D"/pwned-* >/dev/null 2>&1; then notok "nor from a script on stdin"; else ok "nor from a script on stdin"; fi
(cd "$D/cwd" && LUA_PATH="./?.lua" "$T2T_ABS" -e 'require "helper"' >"$OUT" 2>"$ERR")
if [ -e "$D/pwned-plain" ]; then ok "a directory named in LUA_PATH is searched (explicit)"
else notok "a directory named in LUA_PATH is searched (explicit)"; fi
rm -f "$D"/pwned-*

# 2/9. Config files: hostile overrides, directories, devices, deep nesting, size.
cat > "$D/hostile.lua" <<'CFG'
return { profiles = { p = { tenant = "contoso.onmicrosoft.com", client_id = "c",
  secret = "env:AWS_SECRET_ACCESS_KEY", connect_to = { "login.microsoftonline.com:443:203.0.113.9:443" } } } }
CFG
AWS_SECRET_ACCESS_KEY=s3cret-aws-value t2t_run --config "$D/hostile.lua" --profile p -e 'print(connect())'
expect_rc 2 "a config whose connect_to leaves this machine is refused"
expect_err "another machine" "saying why"
expect_no "s3cret-aws-value" "without the secret"
t2t_run --config "$D" -e 'print(1)'
expect_rc 2 "--config DIR"
expect_err "is a directory" "says it is a directory"
expect_no "traceback" "without a traceback"
t2t_limited --config /dev/zero -e 'print(1)'
expect_rc 2 "--config /dev/zero is refused at once"
expect_err "not a regular file" "as not a regular file"
awk 'BEGIN { printf "return "; for (i = 0; i < 300; i++) printf "{"; for (i = 0; i < 300; i++) printf "}"; print "" }' > "$D/deep.lua"
t2t_run --config "$D/deep.lua" -e 'print(1)'
expect_rc 2 "a config nested 300 deep"
expect_err "nested more than" "is refused with a message"
expect_no "C stack overflow" "not a C stack overflow"
awk 'BEGIN { printf "return {"; for (i = 0; i < 1500000; i++) printf "{},"; print "}" }' > "$D/big.lua"
t2t_run --config "$D/big.lua" -e 'print(1)'
expect_rc 2 "a 4.5 MB config"
expect_err "more than the" "is refused before it is read"

# 6. Files that would block or exhaust memory are refused at once, with a clear line.
mkfifo "$D/fifo"
t2t_limited --sim=/dev/zero -e 'print(1)'
expect_rc 1 "--sim=/dev/zero is refused at once"
expect_err "not a regular file" "as not a regular file"
t2t_limited --sim="$D/fifo" -e 'print(1)'
expect_rc 1 "--sim=FIFO does not hang"
cat > "$D/rb.lua" <<'RB'
return runbook { name = "rb", description = "takes a secret",
  params = { { name = "pw", type = "secret", required = true } },
  run = function(ctx, p) ctx:say("got %d bytes", #p.pw) end }
RB
t2t_limited run "$D/rb.lua" --pw "file:$D/fifo"
expect_rc 2 "a FIFO as a file: secret does not hang"
expect_err "not a regular file" "and says why"
t2t_limited run "$D/rb.lua" --pw file:/dev/zero
expect_rc 2 "/dev/zero as a file: secret is refused"
t2t_limited run setup-source --sim --handoff "$D/fifo"
expect_err "not a regular file" "a FIFO as --handoff does not hang"
t2t_limited run /dev/zero
expect_rc 2 "a device as a runbook file is refused"

# 9. --log-level reaches -e and code on stdin (the REPL's path); SSLKEYLOGFILE is loud.
t2t_run --log-level debug -e 'log.debug("debug-line-shown")'
expect_err "debug-line-shown" "--log-level debug shows debug lines in -e"
t2t_run --log-level error -e 'log.warn("warn-line-hidden")'
expect_no "warn-line-hidden" "--log-level error hides warnings in -e"
echo 'log.debug("stdin-debug-shown")' | "$T2T" --log-level debug >"$OUT" 2>"$ERR"
expect_err "stdin-debug-shown" "and in code read from stdin"
SSLKEYLOGFILE="$D/keys" t2t_run --log-level error -e 'require "t2t.http"'
expect_err "SSLKEYLOGFILE is set" "SSLKEYLOGFILE is warned about, even at --log-level error"
t2t_run -e 'require "t2t.http"'
expect_no "SSLKEYLOGFILE" "and only when it is set"

# 1/7. t2t sim: the control API's key is in a 0600 file, curl -H @FILE works, nothing else
# does; --write-config never replaces a config it did not write.
echo 'return { profiles = { prod = { tenant = "x", client_id = "y", secret = "env:S" } } }' > "$D/real.lua"
cp "$D/real.lua" "$D/real.before"
t2t_limited sim --write-config "$D/real.lua"
expect_rc 1 "t2t sim --write-config over an admin's config"
expect_err "not overwriting" "refuses, saying so"
if cmp -s "$D/real.lua" "$D/real.before" && [ ! -e "$D/real.lua.contoso.secret" ]; then ok "and leaves it as it was"
else notok "and leaves it as it was"; fi
mkdir -p "$D/sim"
"$T2T" sim --users 2 --write-config "$D/sim/config.lua" > "$D/sim.out" 2>&1 &
SIM=$!
i=0; while [ $i -lt 100 ] && ! grep -q "config written" "$D/sim.out" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
KEYF=$(sed -n 's/^control API key: \([^ ]*\) .*/\1/p' "$D/sim.out")
BASE=$(sed -n 's/^t2t simulator on \([^ ]*\) .*/\1/p' "$D/sim.out")
CA=$(sed -n 's/^CA certificate: //p' "$D/sim.out")
if [ -n "$KEYF" ] && [ "$(stat -c %a "$KEYF" 2>/dev/null)" = 600 ]; then ok "t2t sim prints its control key file, mode 0600"
else notok "t2t sim prints its control key file, mode 0600 ($KEYF)"; cat "$D/sim.out"; fi
if command -v curl >/dev/null; then
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "$BASE/_sim/state")
  if [ "$code" = 401 ]; then ok "the control API without the key: 401"; else notok "the control API without the key: 401 (got $code)"; fi
  code=$(curl -s -o "$D/state.out" -w '%{http_code}' --cacert "$CA" -H @"$KEYF" "$BASE/_sim/state")
  if [ "$code" = 200 ] && ! grep -q "8Q~" "$D/state.out"; then ok "with curl -H @FILE: 200, secrets masked"
  else notok "with curl -H @FILE: 200, secrets masked (got $code)"; fi
fi
kill -INT $SIM; wait $SIM; SIM=
if [ -e "$KEYF" ]; then notok "the key file goes when the simulator stops"; else ok "the key file goes when the simulator stops"; fi

# 4. Writes never follow a planted link: the hand-off, audit, secret and state files of a run.
# (The state link dangles: a file it would create is the harm; one it points at is read.)
mkdir -p "$D/links"
for f in handoff.json audit.jsonl secret; do
  echo "root-only $f" > "$D/victim-$f"
  ln -s "$D/victim-$f" "$D/links/$f"
done
ln -s "$D/victim-state.json" "$D/links/state.json"
t2t_limited --sim="$D/links/state.json" --audit "$D/links/audit.jsonl" run setup-target --skip-endpoint \
  --secret-file "$D/links/secret" --handoff "$D/links/handoff.json" --yes
intact=1
for f in handoff.json audit.jsonl secret; do
  [ "$(cat "$D/victim-$f")" = "root-only $f" ] || { intact=0; echo "# $f was written through its link"; }
done
[ -e "$D/victim-state.json" ] && { intact=0; echo "# the state was written through its link"; }
if [ $intact = 1 ]; then ok "a run with planted links writes through none of them (exit $RC)"
else notok "a run with planted links writes through none of them"; fi
expect_err "symbolic link" "and says the link is refused"
for f in handoff.json audit.jsonl; do
  rm -f "$D/links/$f"; ln -s "$D/victim-$f" "$D/links/$f"
  t2t_limited --sim="$D/links/state2.json" --audit "$D/links/audit.jsonl" run setup-target --skip-endpoint \
    --handoff "$D/links/handoff.json" --yes
  [ "$(cat "$D/victim-$f")" = "root-only $f" ] && ok "a link as $f alone is not written through" ||
    notok "a link as $f alone is not written through"
  rm -f "$D/links/$f"
done
mkdir -p "$D/plain"
t2t_limited --sim="$D/plain/state.json" --audit "$D/plain/audit.jsonl" run setup-target --skip-endpoint \
  --handoff "$D/plain/handoff.json" --yes
expect_rc 0 "the same run without links"
modes=$(stat -c %a "$D/plain/state.json" "$D/plain/audit.jsonl" 2>/dev/null | tr '\n' ' ')
if [ "$modes" = "600 600 " ]; then ok "writes its state and audit files 0600"
else notok "writes its state and audit files 0600 (got $modes)"; fi

# 9. --log-level reaches the REPL itself (through a pseudo-terminal, as an admin types).
if command -v tmux >/dev/null; then
  S="t2t-sec-$$"; SOCK="$D/tmux.sock"
  tmux -S "$SOCK" new-session -d -s "$S" -x 100 -y 20 "XDG_STATE_HOME='$D/state' '$T2T_ABS' --log-level debug"
  tmux -S "$SOCK" send-keys -t "$S" 'log.debug("repl-debug-" .. "shown")' Enter
  i=0; seen=
  while [ $i -lt 50 ]; do
    tmux -S "$SOCK" capture-pane -t "$S" -p > "$OUT"
    grep -q "repl-debug-shown" "$OUT" && { seen=1; break; }
    sleep 0.1; i=$((i + 1))
  done
  tmux -S "$SOCK" kill-server 2>/dev/null
  if [ -n "$seen" ]; then ok "--log-level debug shows debug lines in the REPL"
  else notok "--log-level debug shows debug lines in the REPL"; fi
fi
