#!/bin/sh
# bench: the fault matrix over 30 runs and kill -9 at 20 points of the setup sequence (issue 9),
# each compared with a clean run (tests/e2e/trust_lib.sh).  Prints bench: lines only; kill9_hit
# counts the kills that found the run still going (the rest came after it had finished).
T2T=${T2T:-build/t2t}
. tests/e2e/trust_lib.sh
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
trust_init "$D"
trust_matrix "$D" "${TRUST_BENCH_SEEDS:-30}" >"$D/matrix.log" 2>&1
trust_kills "$D" "${TRUST_BENCH_KILLS:-20}" >"$D/kills.log" 2>&1
echo "bench: fault_matrix_runs = $MATRIX_RUNS"
echo "bench: fault_matrix_duplicates = $MATRIX_DUP"
echo "bench: fault_matrix_divergent = $MATRIX_DIV"
echo "bench: fault_matrix_resent = $MATRIX_RESENT"
echo "bench: fault_matrix_failed_runs = $MATRIX_FAILED"
echo "bench: kill9_runs = $KILL_RUNS"
echo "bench: kill9_hit = $KILL_HIT"
echo "bench: kill9_divergent = $KILL_DIV"
echo "bench: kill9_torn = $KILL_TORN"
