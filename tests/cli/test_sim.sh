# `t2t sim` standalone: it serves, writes a config another t2t process uses to list mailboxes
# through the exo client, keeps secrets out of that process's output, and saves its state on
# Ctrl-C.
. tests/cli/lib.sh
TEST=sim
export XDG_CACHE_HOME=$(mktemp -d)
D=$(mktemp -d)
trap 'kill -INT $SIM 2>/dev/null; rm -rf "$D" "$OUT" "$ERR" "$XDG_CACHE_HOME"' EXIT
"$T2T" sim --users 200 --state "$D/state.json" --write-config "$D/config.lua" > "$D/sim.out" 2>&1 &
SIM=$!
i=0; while [ $i -lt 100 ] && ! grep -q "config written" "$D/sim.out" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
if grep -q "config written to $D/config.lua" "$D/sim.out"; then ok "t2t sim --users 200 serves and writes a config"
else notok "t2t sim --users 200 serves and writes a config"; cat "$D/sim.out"; fi
mode=$(stat -c %a "$D/config.lua.contoso.secret" 2>/dev/null)
if [ "$mode" = 600 ]; then ok "secret files are 0600"; else notok "secret files are 0600 (got $mode)"; fi

t2t_run --config "$D/config.lua" --profile contoso --log-level trace -e '
  local c = connect()
  local n = 0
  for _, m in ipairs(assert(c.exo:invoke("Get-Mailbox", { ResultSize = "Unlimited" }))) do n = n + 1 end
  print("mailboxes", n)
  local org = assert(c.graph:get("/organization"))
  print("tenant", org.value[1].id)
  local mu = assert(c.exo:invoke("New-MailUser", { Name = "pwtest", ExternalEmailAddress = "pwtest@example.com",
    MicrosoftOnlineServicesID = "pwtest@" .. c.profile.tenant, Password = "Pa55!word-x" }))
  print("mail user with a password", mu[1].Name)'
expect_rc 0 "a second process uses the printed config"
expect_out "mail user with a password	pwtest" "a SecureString goes encrypted with the simulated module key the config names"
if grep -q 'exo_securestring_key = "'"$D"'/config.lua.exo-securestring.pem"' "$D/config.lua" &&
   grep -q "BEGIN PUBLIC KEY" "$D/config.lua.exo-securestring.pem"; then ok "the config names the SecureString public key file"
else notok "the config names the SecureString public key file"; fi
if grep -qF "Pa55!word-x" "$OUT" "$ERR"; then notok "the SecureString is not in the output"; else ok "the SecureString is not in the output"; fi
expect_out "mailboxes	200" "it lists the 200 seeded mailboxes through exo"
expect_out "tenant	$(sed -n 's/.*tenant_id = "\([^"]*\)".*/\1/p' "$D/config.lua" | head -1)" "and reads the tenant through graph"
# a simulator profile (connect_to) keeps its tokens in memory: they never reach the real cache
if [ -e "$XDG_CACHE_HOME/t2t/tokens.json" ]; then notok "a simulator profile's tokens stay out of the token cache"
else ok "a simulator profile's tokens stay out of the token cache"; fi
secret=$(cat "$D/config.lua.contoso.secret")
if grep -qF -- "$secret" "$OUT" "$ERR"; then notok "no secret in its output, even at trace level"; else ok "no secret in its output, even at trace level"; fi

# the config names the simulator's DNS server, so a run with it looks the tenants' domains up
# there without --dns (dns = "..." at the top; --dns still wins)
addr=$(sed -n 's/^  dns = "\([^"]*\)".*/\1/p' "$D/config.lua")
if [ -z "$addr" ]; then ok "the config names the simulator's DNS server # SKIP no DNS server (Knot) here"
else
  t2t_run --config "$D/config.lua" --profile contoso -e '
    local dns = require "t2t.dns"
    local txt = assert(dns.txt("_dmarc.contoso.com"))
    print("servers", dns.servers())
    for _, t in ipairs(txt) do print("txt", t) end'
  expect_rc 0 "a run with the config looks up DNS"
  expect_out "servers	$addr" "at the DNS server the config names"
  expect_out "v=DMARC1; p=reject" "and finds the seeded domain's DMARC record there"
  t2t_run --config "$D/config.lua" --profile contoso --dns 192.0.2.1 -e 'print(require("t2t.dns").servers())'
  expect_out "192.0.2.1" "--dns wins over the config's"
fi

# the curl lines it prints work as printed: a token from the simulated login, then Graph
grep -A2 '^-- curl' "$D/sim.out" | tail -2 > "$D/curl.sh"
sh "$D/curl.sh" > "$OUT" 2>"$ERR"; RC=$?
expect_out "\"id\":\"$(sed -n 's/.*tenant_id = "\([^"]*\)".*/\1/p' "$D/config.lua" | head -1)\"" "the printed curl lines get a token and read /organization"
expect_no "InvalidAuthenticationToken" "and are not refused (401)"

kill -INT $SIM
i=0; while [ $i -lt 100 ] && kill -0 $SIM 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
if kill -0 $SIM 2>/dev/null; then notok "Ctrl-C stops it"; kill -9 $SIM; else ok "Ctrl-C stops it"; fi
wait $SIM; rc=$?
if [ "$rc" = 0 ] && [ -s "$D/state.json" ]; then ok "and saves --state (exit 0)"; else notok "and saves --state (exit $rc)"; fi

# the simulator's tokens never reach the token cache (they would be stale at the next start)
C=$(mktemp -d)
XDG_CACHE_HOME="$C" "$T2T" --sim -e 'assert(connect("fabrikam").exo:invoke("Get-OrganizationConfig", {}))' >"$OUT" 2>"$ERR"
RC=$?
expect_rc 0 "--sim with connect()"
if [ -e "$C/t2t/tokens.json" ]; then notok "--sim writes no token cache"; else ok "--sim writes no token cache"; fi
rm -rf "$C"
