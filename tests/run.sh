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

# Layers run JOBS at a time (T2T_TEST_JOBS, default 2: most of a layer's time is waiting on a
# simulator, a server or a child process, not CPU), each into its own log; their lines are
# printed in order, each as soon as it and every layer before it has finished.
JOBS=${T2T_TEST_JOBS:-2}
QUEUE=""                                      # started, not yet reported: "name|pid|t0" ...
running=0

run_layer() { # run_layer OUT COMMAND...   (in the background: the command, then its exit code)
  out=$1; shift
  # each layer its own config, cache and state homes: layers side by side must not see each
  # other's token caches or configs
  XDG_CONFIG_HOME="$out.home/config" XDG_CACHE_HOME="$out.home/cache" XDG_STATE_HOME="$out.home/state" \
    "$@" > "$out" 2>&1
  echo $? > "$out.rc"
}

report() { # report NAME PID T0: wait for a started layer and print its line
  name=$1; pid=$2; t0=$3
  wait "$pid"
  out="$LOG/$(echo "$name" | tr / _).out"
  rc=$(cat "$out.rc" 2>/dev/null || echo 1)
  secs=$(( $(date +%s) - t0 ))
  p=$(grep -acE '^ok\b' "$out" | tr -d ' ')
  s=$(grep -acE '^ok\b.*# *SKIP' "$out" | tr -d ' ')
  f=$(grep -acE '^not ok\b' "$out" | tr -d ' ')
  p=$((p - s))
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then   # crashed without reporting a failure
    f=1; echo "not ok - $name exited $rc" >> "$out"
  fi
  printf '%-28s %s\n' "$name" "$p passed, $f failed, $s skipped  (${secs}s)"
  if [ "$f" != 0 ]; then
    grep -aE -A12 '^not ok\b' "$out" | head -60 | sed 's/^/    /'
  fi
  cat "$out" >> "$LOG/all"
}

report_oldest() {
  first=${QUEUE%% *}
  QUEUE=${QUEUE#"$first"}; QUEUE=${QUEUE# }
  IFS='|' read -r n pid t0 <<EOF
$first
EOF
  report "$n" "$pid" "$t0"
  running=$((running - 1))
}

layer() { # layer NAME COMMAND...   (report() reuses plain names: keep these apart)
  lname=$1; shift
  case "$lname" in *"$ONLY"*) ;; *) return ;; esac
  [ "$running" -lt "$JOBS" ] || report_oldest
  lout="$LOG/$(echo "$lname" | tr / _).out"
  run_layer "$lout" "$@" &
  QUEUE="${QUEUE:+$QUEUE }$lname|$!|$(date +%s)"
  running=$((running + 1))
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
while [ "$running" -gt 0 ]; do report_oldest; done

P=$(grep -acE '^ok\b' "$LOG/all"); S=$(grep -acE '^ok\b.*# *SKIP' "$LOG/all")
F=$(grep -acE '^not ok\b' "$LOG/all")
P=$((P - S))
rm -rf "$B/test-log" && cp -R "$LOG" "$B/test-log"   # the last run's logs, for reading
echo "$P passed, $F failed, $S skipped"
[ "$F" = 0 ]
