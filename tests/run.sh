#!/bin/sh
# Run every test layer and print one closing line "N passed, N failed, N skipped" -- always the
# last line of the output.
#   C units (build/tests/test_*), Lua units inside t2t (tests/lua, one line per file), CLI
#   transcripts (tests/cli/test_*.sh), the REPL through a pseudo-terminal, end-to-end
#   (tests/e2e/test_*.sh).  TESTS=STRING runs the layers whose name contains STRING.
# Every layer prints "ok ..." / "not ok ..." lines (TAP-like); this script counts them and shows
# one line per layer as it finishes (with its seconds), so a long run shows its progress.
B=${T2T_BUILD:-build}
export T2T="$B/t2t"
mkdir -p "$B"
LOG=$(mktemp -d "$B/test-log.XXXXXX")         # one per run: concurrent runs must not mix
trap 'rm -rf "$LOG"' EXIT
# tests never read or write the user's config, token cache or history
export XDG_CONFIG_HOME="$LOG/home/config" XDG_CACHE_HOME="$LOG/home/cache" XDG_STATE_HOME="$LOG/home/state"
# t2t searches no module in the current directory unless told: the tests' helper modules
# (tests.lua.handlers.*) are found from the source tree because this says so
export LUA_PATH="./?.lua;;"
ONLY=${TESTS:-}
: > "$LOG/all"

layer() { # layer NAME COMMAND...
  name=$1; shift
  case "$name" in *"$ONLY"*) ;; *) return ;; esac
  printf '%-28s ' "$name"
  out="$LOG/$(echo "$name" | tr / _).out"
  t0=$(date +%s)
  "$@" > "$out" 2>&1
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  p=$(grep -acE '^ok\b' "$out" | tr -d ' ')
  s=$(grep -acE '^ok\b.*# *SKIP' "$out" | tr -d ' ')
  f=$(grep -acE '^not ok\b' "$out" | tr -d ' ')
  p=$((p - s))
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then   # crashed without reporting a failure
    f=1; echo "not ok - $name exited $rc" >> "$out"
  fi
  echo "$p passed, $f failed, $s skipped  (${secs}s)"
  if [ "$f" != 0 ]; then
    grep -aE -A12 '^not ok\b' "$out" | head -60 | sed 's/^/    /'
  fi
  cat "$out" >> "$LOG/all"
}

for t in "$B"/tests/test_*; do
  [ -x "$t" ] && layer "c/$(basename "$t")" "$t"
done
for t in tests/lua/test_*.lua; do                 # one layer per file: progress, and isolation
  [ -f "$t" ] && layer "lua/$(basename "$t" .lua)" "$T2T" tests/lua/run.lua "$t"
done
for t in tests/cli/test_*.sh tests/e2e/test_*.sh tests/compat/test_*.sh; do
  [ -f "$t" ] && layer "${t#tests/}" sh "$t"
done

P=$(grep -acE '^ok\b' "$LOG/all"); S=$(grep -acE '^ok\b.*# *SKIP' "$LOG/all")
F=$(grep -acE '^not ok\b' "$LOG/all")
P=$((P - S))
rm -rf "$B/test-log" && cp -R "$LOG" "$B/test-log"   # the last run's logs, for reading
echo "$P passed, $F failed, $S skipped"
[ "$F" = 0 ]
