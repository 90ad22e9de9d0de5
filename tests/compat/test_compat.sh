# Client compatibility: the simulator checked through Microsoft's own Node libraries
# (@azure/msal-node, @azure/identity, the Graph JS client, @azure/arm-resources,
# @azure/arm-keyvault, @azure/keyvault-secrets), exact versions pinned in package-lock.json and
# installed with `npm ci` into $B/compat (again only when the lock changes).  One `t2t sim`
# with --connect-proxy serves every test; the libraries use the real host names through
# HTTPS_PROXY and trust the simulator's CA through NODE_EXTRA_CA_CERTS.
#   sh tests/compat/test_compat.sh [FILTER]      (FILTER: only tests whose name contains it)
T2T=${T2T:-build/t2t}
B=${T2T_BUILD:-build}
SRC=tests/compat
W=$B/compat
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "ok - compat # SKIP node and npm are not installed (apt-get install nodejs npm): the Microsoft client libraries cannot run"
  exit 0
fi
mkdir -p "$W"
if ! cmp -s "$SRC/package-lock.json" "$W/package-lock.json" || [ ! -d "$W/node_modules" ]; then
  cp "$SRC/package.json" "$SRC/package-lock.json" "$W/"
  if ! (cd "$W" && npm ci --no-audit --no-fund --loglevel=error) > "$W/npm.log" 2>&1; then
    echo "not ok - compat: npm ci of the pinned Microsoft libraries failed (the npm registry must be reachable)"
    sed 's/^/  # /' "$W/npm.log" | tail -20
    rm -f "$W/package-lock.json"
    exit 1
  fi
fi
cp "$SRC"/*.js "$W/"
D=$(mktemp -d)
SIM=
trap '[ -n "$SIM" ] && kill -INT $SIM 2>/dev/null; [ -n "$SIM" ] && wait $SIM 2>/dev/null; [ -n "$T2T_COMPAT_KEEP" ] && cp "$D/sim.log" "$T2T_COMPAT_KEEP"; rm -rf "$D"' EXIT
"$T2T" sim --users 60 --json --connect-proxy 0 --log "$D/sim.log" --log-bodies \
  > "$D/profile.json" 2> "$D/sim.err" &
SIM=$!
i=0; while [ $i -lt 200 ] && ! grep -q proxy_url "$D/profile.json" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
if ! grep -q proxy_url "$D/profile.json"; then
  echo "not ok - compat: t2t sim --connect-proxy did not start"
  sed 's/^/  # /' "$D/sim.err" | head -20
  exit 1
fi
field() { sed -n 's/.*"'"$1"'":"\([^"]*\)".*/\1/p' "$D/profile.json" | sed 's#\\/#/#g'; }
proxy=$(field proxy_url)
ca=$(field ca_file)
echo "ok - compat: t2t sim --connect-proxy serves ($proxy)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$D/cert.key" -out "$D/cert.pem" -days 45 \
  -subj "/CN=t2t compat test" >/dev/null 2>&1
HTTPS_PROXY=$proxy NO_PROXY=127.0.0.1,localhost NODE_EXTRA_CA_CERTS=$ca \
  T2T_SIM_PROFILE="$D/profile.json" T2T_SIM_LOG="$D/sim.log" T2T_TEST_CERT="$D/cert.pem" \
  node --no-warnings "$W/run.js" "$@"
rc=$?
# --log-bodies: the bodies are there, the secrets the libraries sent are not
n=$(grep -c '"body":' "$D/sim.log")
leaked=
for t in contoso fabrikam; do
  secret=$(sed -n 's/.*"'"$t"'":{[^}]*"client_secret":"\([^"]*\)".*/\1/p' "$D/profile.json")
  [ -n "$secret" ] && grep -qF -- "$secret" "$D/sim.log" && leaked="$leaked $t-secret"
done
grep -qF 'value-1' "$D/sim.log" && leaked="$leaked key-vault-secret-value"
if [ "$n" -gt 0 ] && [ -z "$leaked" ]; then echo "ok - compat: --log-bodies logged $n bodies, no secret in them"
else echo "not ok - compat: --log-bodies logged $n bodies, leaked:$leaked"; rc=1; fi
kill -INT $SIM 2>/dev/null
wait $SIM 2>/dev/null
SIM=
exit $rc
