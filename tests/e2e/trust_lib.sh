# Shared by tests/e2e/test_trust.sh and tests/bench/bench_trust.sh (sourced; needs $T2T):
# the setup sequence under faults and under kill -9, each compared with a clean run.
#   trust_init DIR           a seeded state (DIR/seed.json), the clean run's summary and the
#                            number of lines its audit has (TRUST_CLEAN_LINES)
#   trust_matrix DIR N       N fault runs (seeds 1..N, specs alternating); sets MATRIX_RUNS,
#                            MATRIX_DUP, MATRIX_DIV, MATRIX_RESENT, MATRIX_FAILED
#   trust_kills DIR N        N kill -9 points then a re-run each; sets KILL_RUNS, KILL_DIV,
#                            KILL_TORN (audit files with half a line, a partial state file, or
#                            a killed save's temporary file left after the re-run), KILL_HIT
# Both print one line per run, "# run NAME: ..." for the log, and never fail by themselves.
# Runs go TRUST_PAR at a time (run_par): each mostly waits (lag, backoff), the simulator's keys
# are made at once (trust_run.lua), so a few at a time keep two cores busy without crowding them.
TRUST_SPECS="lost=0.4,reset=0.05,429=0.05,lag=0.2s,retry_after=0
500=0.05,502=0.03,503=0.05,504=0.05,lost=0.1,mid=0.02,lag=0.2s,retry_after=0,token_lifetime=2s"
TRUST_PAR=${TRUST_PAR:-5}

trust_summary() { "$T2T" tests/e2e/setup_state.lua "$1"; }

trust_init() {
  d=$1
  "$T2T" -e "local s = assert(require('t2t.sim').start { state = '$d/seed.json', users = 3, key_type = 'ed25519' })
             assert(s:stop())" >"$d/seed.out" 2>&1
  cp "$d/seed.json" "$d/clean.json"
  "$T2T" tests/e2e/trust_run.lua "$d/clean.json" "$d/clean.h" --audit "$d/clean.audit" >"$d/clean.out" 2>&1
  TRUST_CLEAN_RC=$?
  TRUST_CLEAN_LINES=$(wc -l <"$d/clean.audit" | tr -d ' ')
  trust_summary "$d/clean.json" >"$d/clean.sum"
}

# run_par N CMD...: CMD with each of 1..N as its last argument, in TRUST_PAR lanes (lane j runs
# j, j + TRUST_PAR, ...), so a slow run holds up only its own lane.  It waits for its lanes
# only, not for what else the caller has running in the background (test_trust.sh's matrix).
run_par() {
  rp_n=$1; shift
  rp_pids=""
  rp_j=1
  while [ $rp_j -le "$TRUST_PAR" ] && [ $rp_j -le "$rp_n" ]; do
    ( rp_i=$rp_j
      while [ $rp_i -le "$rp_n" ]; do "$@" $rp_i; rp_i=$((rp_i + TRUST_PAR)); done ) &
    rp_pids="$rp_pids $!"
    rp_j=$((rp_j + 1))
  done
  [ -z "$rp_pids" ] || wait $rp_pids
}

# One fault run: DIR I (seed I, the specs in turn)
trust_fault_run() {
  spec=$(echo "$TRUST_SPECS" | sed -n "$(( ($2 - 1) % 2 + 1 ))p")
  cp "$1/seed.json" "$1/m$2.json"
  "$T2T" tests/e2e/trust_run.lua "$1/m$2.json" "$1/m$2.h" --faults "$spec" --seed "$2" >"$1/m$2.out" 2>&1
  echo $? >"$1/m$2.rc"
}

trust_matrix() {
  d=$1; n=$2
  MATRIX_RUNS=0; MATRIX_DUP=0; MATRIX_DIV=0; MATRIX_RESENT=0; MATRIX_FAILED=0
  run_par "$n" trust_fault_run "$d"
  i=1
  while [ $i -le "$n" ]; do
    MATRIX_RUNS=$((MATRIX_RUNS + 1))
    trust_summary "$d/m$i.json" >"$d/m$i.sum" 2>&1
    dup=$(grep -cE ' x([2-9]|[1-9][0-9]+)$' "$d/m$i.sum")
    div=0; cmp -s "$d/clean.sum" "$d/m$i.sum" || div=1
    resent=$(sed -n 's/^trust: .* resent=\([0-9]*\) .*$/\1/p' "$d/m$i.out")
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

# One kill chain: DIR I -- the sequence killed -9 at point I, then re-run to the end with --check.
# Point I: after audit line (I - 1) mod (TRUST_CLEAN_LINES + 1) -- 0 is start-up -- then a few
# milliseconds more (0 to 60, varied), so the kills land on every change's request, on the
# simulator's save, and between changes.
trust_kill_one() {
  d=$1; i=$2
  k=$(( (i - 1) % (${TRUST_CLEAN_LINES:-20} + 1) ))
  ms=$(( (i * 37) % 61 ))
  [ "$k" = 0 ] && ms=$(( 150 + (i * 53) % 300 ))
  cp "$d/seed.json" "$d/k$i.json"
  "$T2T" tests/e2e/trust_run.lua "$d/k$i.json" "$d/k$i.h" --audit "$d/k$i.audit" --kill "$k:$ms" \
    >"$d/k$i.killed.out" 2>&1
  if [ $? = 137 ]; then echo killed >"$d/k$i.how"; else echo finished >"$d/k$i.how"; fi
  echo "$k:$ms" >>"$d/k$i.how"
  "$T2T" tests/e2e/trust_run.lua "$d/k$i.json" "$d/k$i.h" --audit "$d/k$i.audit" --check >"$d/k$i.out" 2>&1
  echo $? >"$d/k$i.rc"
}

trust_kills() {
  d=$1; n=$2
  KILL_RUNS=0; KILL_DIV=0; KILL_TORN=0; KILL_FAILED=0; KILL_HIT=0
  run_par "$n" trust_kill_one "$d"
  i=1
  while [ $i -le "$n" ]; do
    KILL_RUNS=$((KILL_RUNS + 1))
    trust_summary "$d/k$i.json" >"$d/k$i.sum" 2>&1
    div=0; cmp -s "$d/clean.sum" "$d/k$i.sum" || div=1
    torn=$(sed -n 's/^trust: .* torn=\([0-9]*\) temps=\([0-9]*\)$/\1 \2/p' "$d/k$i.out")
    case "$torn" in "0 0") torn=0 ;; *) torn=1 ;; esac
    rc=$(cat "$d/k$i.rc")
    how=$(head -1 "$d/k$i.how")
    [ "$div" -gt 0 ] && KILL_DIV=$((KILL_DIV + 1))
    [ "$torn" -gt 0 ] && KILL_TORN=$((KILL_TORN + 1))
    [ "$rc" != 0 ] && KILL_FAILED=$((KILL_FAILED + 1))
    [ "$how" = killed ] && KILL_HIT=$((KILL_HIT + 1))
    echo "# kill k$i ($how after $(sed -n 2p "$d/k$i.how")): re-run rc=$rc divergent=$div torn=$torn"
    i=$((i + 1))
  done
}
