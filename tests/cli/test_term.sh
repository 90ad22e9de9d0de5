# term.readline completion through a pseudo-terminal (tmux): a completer whose result raises
# while being read must not unwind through libedit (regression: luaL_len ran unprotected).
. tests/cli/lib.sh
TEST=term
if ! command -v tmux >/dev/null 2>&1; then echo "ok - $TEST: # SKIP tmux not installed"; exit 0; fi
S="t2t-term-test-$$"
DIR=$(mktemp -d)
SOCK="$DIR/tmux.sock"
tm() { tmux -S "$SOCK" "$@"; }
wait_for() {
  i=0
  while [ $i -lt 50 ]; do
    tm capture-pane -t "$S" -p -S -200 > "$OUT" 2>/dev/null
    grep -qF -- "$1" "$OUT" && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}
check() { if wait_for "$1"; then ok "$2"; else notok "$2: screen lacks '$1'"; fi; }
cat > "$DIR/t.lua" <<'LUA'
local term = require "t2t.core.term"
term.set_completer(function()
  return setmetatable({}, { __len = function() error("completer boom") end })
end)
local a = term.readline("p> ")
term.set_completer(function(word) return { word .. "pha" } end)
local b = term.readline("q> ")
print("got[" .. tostring(a) .. "][" .. tostring(b) .. "]")
io.read("l")
LUA
tm new-session -d -s "$S" -x 100 -y 20 "$T2T $DIR/t.lua"
check "p>" "first prompt"
tm send-keys -t "$S" 'ab' Tab Enter
check "q>" "a completer that raises leaves readline running"
tm send-keys -t "$S" 'al' Tab Enter
check "got[ab][alpha]" "both lines read; completion works afterwards"
tm kill-server 2>/dev/null
rm -rf "$DIR"
