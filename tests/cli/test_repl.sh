# The REPL through a pseudo-terminal (tmux): multi-line input, completion, pretty results,
# Ctrl-C cancelling a running chunk without leaving the REPL, history, Ctrl-D.
. tests/cli/lib.sh
TEST=repl
S="t2t-repl-test-$$"
STATE=$(mktemp -d)
export XDG_STATE_HOME="$STATE"
SOCK="$STATE/tmux.sock"
tm() { tmux -S "$SOCK" "$@"; }
screen() { tm capture-pane -t "$S" -p -S -200 > "$OUT"; }
# wait_for TEXT: poll the screen until TEXT shows (at most ~5 s)
wait_for() {
  i=0
  while [ $i -lt 50 ]; do
    screen
    grep -qF -- "$1" "$OUT" && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}
check() { if wait_for "$1"; then ok "$2"; else notok "$2: screen lacks '$1'"; fi; }
# has / lacks ERE NAME: the screen last read matches / does not match
has() { if grep -qE -- "$1" "$OUT"; then ok "$2"; else notok "$2"; fi; }
lacks() { if grep -qE -- "$1" "$OUT"; then notok "$2"; else ok "$2"; fi; }
# quit: Ctrl-D, then wait (at most ~5 s) for the session to end
quit() {
  tm send-keys -t "$S" C-d
  i=0; while [ $i -lt 50 ] && tm has-session -t "$S" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
}

tm new-session -d -s "$S" -x 100 -y 40 "$T2T"
check "t2t>" "prompt appears"
tm send-keys -t "$S" 'local function add(a,' Enter
check ">>" "incomplete chunk asks for more"
tm send-keys -t "$S" 'b) return a + b end; sum = add' Enter
tm send-keys -t "$S" 'sum(40, 2)' Enter
check "42" "two-line function defined and called"
tm send-keys -t "$S" 'pretty.form' Tab
check "pretty.format" "tab completes a table field"
tm send-keys -t "$S" C-u 'cjs' Tab
check "cjson" "tab completes a global"
tm send-keys -t "$S" C-u '{z = 1, a = {"x"}}' Enter
check 'a = {' "tables pretty-printed"
tm send-keys -t "$S" 'while true do end' Enter
sleep 0.3
tm send-keys -t "$S" C-c
check "interrupted!" "Ctrl-C cancels the running chunk"
tm send-keys -t "$S" 'sum(1, 1) * 50' Enter
check "100" "the REPL goes on after Ctrl-C"
# Ctrl-C at the prompt: the next prompt starts a line of its own
tm send-keys -t "$S" 'abc' C-c
sleep 0.2
tm send-keys -t "$S" 'sum(2, 3) * 11' Enter
check "55" "a line after Ctrl-C at the prompt runs"
has '^t2t> sum\(2, 3\) \* 11$' "Ctrl-C at the prompt leaves a fresh prompt on a new line"
# an error shows its message, not t2t's internal frames
tm send-keys -t "$S" 'local t = nil; return t.x' Enter
check "attempt to index a nil value" "an error shows its message"
lacks "stack traceback|t2t/[a-z_/]+\.lua:[0-9]" "and no traceback or t2t frames"
# connect() with nothing configured says why instead of giving nil silently
tm send-keys -t "$S" 'c = connect("contoso")' Enter
check "cannot read the config file" "connect() with no config says why"
quit
if tm has-session -t "$S" 2>/dev/null; then notok "Ctrl-D exits"; tm kill-session -t "$S"; else ok "Ctrl-D exits"; fi
if grep -q "sum(40,.*2)" "$STATE/t2t/history" 2>/dev/null; then ok "history saved under XDG_STATE_HOME"
else notok "history saved under XDG_STATE_HOME"; fi

# The --sim REPL: a connection prints as one line, no secret reaches the screen, Graph paths
# pasted from Graph Explorer work, a GET shows the body only, and the simulator's temporary CA
# file is gone after Ctrl-D.
tm new-session -d -s "$S" -x 200 -y 50 "$T2T --sim"
check "t2t>" "--sim prompt appears"
tm send-keys -t "$S" "s = require('t2t.sim').current(); f = io.open('$STATE/secret', 'w'); f:write(s.profile.tenants.contoso.client_secret); f:close(); print('CA=' .. s.ca_file)" Enter
check "CA=/" "the simulator runs"
CA=$(grep -o 'CA=/[^ ]*' "$OUT" | tail -1 | cut -c4-)
tm send-keys -t "$S" 'c = connect("contoso")' Enter 'c' Enter
check "<connection contoso: tenant" "a connection prints as one line"
tm send-keys -t "$S" 'c.profile' Enter
check 'client_secret = "***"' "its profile's secret is masked"
tm send-keys -t "$S" "#c.graph:get(\"/users?\$filter=startswith(displayName, 'A')\").value" Enter
sleep 0.5; screen
lacks "bad/illegal format" "a Graph Explorer path with spaces and quotes is accepted"
has '^[0-9]+$' "and answers"
tm send-keys -t "$S" 'c.graph:get("/organization")' Enter
check "countryLetterCode" "graph:get shows the body"
lacks 'header_list|http_version' "and not the whole HTTP response"
tm send-keys -t "$S" 'connect("nosuch")' Enter
check "the simulator has no tenant 'nosuch'" "connect() to an unknown tenant says so"
if [ -s "$STATE/secret" ] && grep -qF -- "$(cat "$STATE/secret")" "$OUT"; then notok "the simulated secret never reaches the screen"
else ok "the simulated secret never reaches the screen"; fi
if [ -n "$CA" ] && [ -f "$CA" ]; then ok "the simulator's CA file exists while it runs"; else notok "the simulator's CA file exists while it runs ($CA)"; fi
quit
if [ -n "$CA" ] && [ ! -e "$CA" ]; then ok "Ctrl-D removes the simulator's temporary files"; else notok "Ctrl-D removes the simulator's temporary files"; fi
tm kill-server 2>/dev/null
rm -rf "$STATE"
