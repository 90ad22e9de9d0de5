# Shared by tests/e2e/test_trust.sh and tests/bench/bench_trust.sh (sourced; needs $T2T):
# the setup sequence under faults and under kill -9, each compared with a clean run.
#   trust_init DIR           a seeded state (DIR/seed.json) and the clean run's summary
#   trust_matrix DIR N       N fault runs (seeds 1..N, specs alternating); sets MATRIX_RUNS,
#                            MATRIX_DUP, MATRIX_DIV, MATRIX_RESENT, MATRIX_FAILED
#   trust_kills DIR N        N kill -9 points then a re-run each; sets KILL_RUNS, KILL_DIV,
#                            KILL_TORN (audit files with half a line, or a partial state file)
# Both print one line per run, "# run NAME: ..." for the log, and never fail by themselves.
TRUST_SPECS="lost=0.4,reset=0.05,429=0.05,lag=0.2s,retry_after=0
500=0.05,502=0.03,503=0.05,504=0.05,lost=0.1,mid=0.02,lag=0.2s,retry_after=0,token_lifetime=2s"
TRUST_PAR=${TRUST_PAR:-10}    # runs at once: they mostly wait (lag, backoff), little CPU each

trust_summary() { "$T2T" tests/e2e/setup_state.lua "$1"; }

trust_init() {
  d=$1
  "$T2T" -e "local s = assert(require('t2t.sim').start { state = '$d/seed.json', users = 3 }); assert(s:stop())" \
    >"$d/seed.out" 2>&1
  cp "$d/seed.json" "$d/clean.json"
  t0=$(date +%s%N)
  "$T2T" tests/e2e/trust_run.lua "$d/clean.json" "$d/clean.h" >"$d/clean.out" 2>&1
  TRUST_CLEAN_RC=$?
  TRUST_CLEAN_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
  trust_summary "$d/clean.json" >"$d/clean.sum"
}

# One fault run, in the background: DIR NAME SPEC SEED
trust_fault_run() {
  cp "$1/seed.json" "$1/$2.json"
  "$T2T" tests/e2e/trust_run.lua "$1/$2.json" "$1/$2.h" "$3" "$4" >"$1/$2.out" 2>&1
  echo $? >"$1/$2.rc"
}

trust_matrix() {
  d=$1; n=$2; i=1
  MATRIX_RUNS=0; MATRIX_DUP=0; MATRIX_DIV=0; MATRIX_RESENT=0; MATRIX_FAILED=0
  while [ $i -le "$n" ]; do
    j=0
    while [ $j -lt "$TRUST_PAR" ] && [ $i -le "$n" ]; do
      spec=$(echo "$TRUST_SPECS" | sed -n "$(( (i - 1) % 2 + 1 ))p")
      trust_fault_run "$d" "m$i" "$spec" "$i" &
      i=$((i + 1)); j=$((j + 1))
    done
    wait
  done
  i=1
  while [ $i -le "$n" ]; do
    MATRIX_RUNS=$((MATRIX_RUNS + 1))
    trust_summary "$d/m$i.json" >"$d/m$i.sum" 2>&1
    dup=$(grep -cE ' x([2-9]|[1-9][0-9]+)$' "$d/m$i.sum")
    div=0; cmp -s "$d/clean.sum" "$d/m$i.sum" || div=1
    resent=$(sed -n 's/^trust: .* resent=\([0-9]*\)$/\1/p' "$d/m$i.out")
    [ -n "$resent" ] || resent=1
    rc=$(cat "$d/m$i.rc")
    [ "$dup" -gt 0 ] && MATRIX_DUP=$((MATRIX_DUP + 1))
    [ "$div" -gt 0 ] && MATRIX_DIV=$((MATRIX_DIV + 1))
    [ "$resent" -gt 0 ] && MATRIX_RESENT=$((MATRIX_RESENT + 1))
    [ "$rc" != 0 ] && MATRIX_FAILED=$((MATRIX_FAILED + 1))
    echo "# run m$i seed $i spec $(( (i - 1) % 2 + 1 )): rc=$rc duplicates=$dup divergent=$div resent=$resent"
    i=$((i + 1))
  done
}

# An audit file is whole lines of JSON (it may lack the last change, never end mid-line), and
# the state file is complete JSON.  Prints what is wrong, nothing when all is well.
trust_check_files() { # STATE AUDIT
  "$T2T" -e "
    local cjson = require 'cjson'
    local f = io.open('$2', 'rb')
    if f then
      local s = f:read('a') f:close()
      if #s > 0 and s:sub(-1) ~= '\n' then print('audit ends with half a line') end
      for line in s:gmatch('[^\n]+') do
        if not pcall(cjson.decode, line) then print('audit line is not JSON: ' .. line:sub(1, 60)) end
      end
    end
    local ok, err = require('t2t.sim.model').load('$1')
    if not ok then print('state: ' .. tostring(err)) end"
}

# One kill chain: DIR NAME DELAY_SECONDS -- run, kill -9 after DELAY, re-run to the end.
trust_kill_one() {
  d=$1; k=$2
  cp "$d/seed.json" "$d/$k.json"
  "$T2T" tests/e2e/trust_run.lua "$d/$k.json" "$d/$k.h" "" "" "$d/$k.audit" >"$d/$k.killed.out" 2>&1 &
  pid=$!
  sleep "$3"
  kill -9 $pid 2>/dev/null && echo killed >"$d/$k.how" || echo finished >"$d/$k.how"
  wait $pid 2>/dev/null
  trust_check_files "$d/$k.json" "$d/$k.audit" >"$d/$k.torn"
  "$T2T" tests/e2e/trust_run.lua "$d/$k.json" "$d/$k.h" "" "" "$d/$k.audit" >"$d/$k.out" 2>&1
  echo $? >"$d/$k.rc"
}

trust_kills() {
  d=$1; n=$2; i=1
  KILL_RUNS=0; KILL_DIV=0; KILL_TORN=0; KILL_FAILED=0
  span=${TRUST_CLEAN_MS:-800}
  while [ $i -le "$n" ]; do
    j=0
    while [ $j -lt 4 ] && [ $i -le "$n" ]; do
      # kill points spread over the clean run's duration (start-up included), in a fixed order
      ms=$(( 30 + (i * 7919 % 97) * span / 100 ))
      trust_kill_one "$d" "k$i" "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))" &
      i=$((i + 1)); j=$((j + 1))
    done
    wait
  done
  i=1
  while [ $i -le "$n" ]; do
    KILL_RUNS=$((KILL_RUNS + 1))
    trust_summary "$d/k$i.json" >"$d/k$i.sum" 2>&1
    div=0; cmp -s "$d/clean.sum" "$d/k$i.sum" || div=1
    torn=0; [ -s "$d/k$i.torn" ] && torn=1
    rc=$(cat "$d/k$i.rc")
    [ "$div" -gt 0 ] && KILL_DIV=$((KILL_DIV + 1))
    [ "$torn" -gt 0 ] && KILL_TORN=$((KILL_TORN + 1))
    [ "$rc" != 0 ] && KILL_FAILED=$((KILL_FAILED + 1))
    echo "# kill k$i ($(cat "$d/k$i.how")): re-run rc=$rc divergent=$div torn=$torn"
    i=$((i + 1))
  done
}
