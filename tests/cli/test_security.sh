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
