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
tm send-keys -t "$S" C-d
i=0; while [ $i -lt 30 ] && tm has-session -t "$S" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
if tm has-session -t "$S" 2>/dev/null; then notok "Ctrl-D exits"; tm kill-session -t "$S"; else ok "Ctrl-D exits"; fi
if grep -q "sum(40,.*2)" "$STATE/t2t/history" 2>/dev/null; then ok "history saved under XDG_STATE_HOME"
else notok "history saved under XDG_STATE_HOME"; fi
tm kill-server 2>/dev/null
rm -rf "$STATE"
