#!/bin/sh
# Run the libFuzzer targets (built by `make FUZZ=1 fuzz-targets` into $FUZZ_BUILD/fuzz/).
#   sh tests/fuzz/run.sh [TARGET...]     every target, or those named (fuzz_x509 fuzz_sim ...)
#   FUZZ_TIME=600   seconds per target (make fuzz's default; make test runs a few seconds)
#   FUZZ_JOBS=1     targets run at once (the machine is shared: one or two)
# Each target starts from its seed corpus in tests/fuzz/corpus/TARGET plus what earlier runs
# found (kept in $FUZZ_BUILD/corpus/TARGET), and replays tests/fuzz/regressions/TARGET (inputs
# that once found a bug) first.  A crash, sanitizer report, leak or timeout fails the run and
# leaves the input in $FUZZ_BUILD/findings/TARGET.  One line per target:
#   fuzz: TARGET runs=N exec/s=N cov=N ft=N corpus=N time=Ns ok|FAILED
FB=${FUZZ_BUILD:-build/fuzz}
TIME=${FUZZ_TIME:-600}
JOBS=${FUZZ_JOBS:-1}
export LUA_PATH="./?.lua;;"                 # the targets' helper modules (tests.fuzz.*)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:intercept_tls_get_addr=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
targets=$*
mkdir -p "$FB/logs"
[ -z "$targets" ] && for t in "$FB"/fuzz/fuzz_*; do [ -x "$t" ] && targets="$targets $(basename "$t")"; done
[ -z "$targets" ] && { echo "fuzz: no targets in $FB/fuzz (make FUZZ=1 fuzz-targets)" >&2; exit 1; }

one() { # one TARGET: run it, print its line, return its status
  t=$1
  work="$FB/corpus/$t"; found="$FB/findings/$t"; log="$FB/logs/$t.log"
  mkdir -p "$work" "$found" "$FB/logs"
  rc=0
  if [ -d "tests/fuzz/regressions/$t" ]; then
    "$FB/fuzz/$t" -detect_leaks=0 "tests/fuzz/regressions/$t"/* > "$log.regressions" 2>&1 || rc=1
  fi
  if [ $rc = 0 ]; then
    # -detect_leaks=0: the per-input leak check misreads Lua's garbage (freed at the next
    # collection, not within the input) and costs ~10 ms an input; LeakSanitizer still checks
    # the whole process at exit, where memory a bug lost shows up as unreachable.
    "$FB/fuzz/$t" -max_total_time="$TIME" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 -detect_leaks=0 \
      -artifact_prefix="$found/" "$work" "tests/fuzz/corpus/$t" > "$log" 2>&1 || rc=1
  fi
  line=$(grep -E '^#[0-9]+[[:space:]].* cov: ' "$log" 2>/dev/null | tail -1)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(echo "$line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  corp=$(echo "$line" | sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p')
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  st=ok; [ $rc = 0 ] || st=FAILED
  echo "fuzz: $t runs=${runs:-0} exec/s=${eps:-0} cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?} time=${secs:-?}s $st"
  if [ $rc != 0 ]; then
    grep -hE 'ERROR|SUMMARY|raised|fuzz_' "$log.regressions" "$log" 2>/dev/null | head -8 | sed 's/^/    /'
    echo "    log: $log   inputs: $found/" 
  fi
  return $rc
}

status=0
set -- $targets
while [ $# -gt 0 ]; do
  pids=""; n=0
  while [ $# -gt 0 ] && [ $n -lt "$JOBS" ]; do
    one "$1" > "$FB/logs/.line.$1" 2>&1 &
    pids="$pids $!:$1"; n=$((n + 1)); shift
  done
  for p in $pids; do
    wait "${p%%:*}" || status=1
    cat "$FB/logs/.line.${p#*:}"; rm -f "$FB/logs/.line.${p#*:}"
  done
done
exit $status
