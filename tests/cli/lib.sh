# Helpers for CLI transcript tests: each check prints "ok - NAME" or "not ok - NAME".
T2T=${T2T:-build/t2t}
OUT=$(mktemp); ERR=$(mktemp)
trap 'rm -f "$OUT" "$ERR"' EXIT
# t2t_run ARGS...: run t2t, keeping stdout, stderr and the exit code
t2t_run() { "$T2T" "$@" >"$OUT" 2>"$ERR" </dev/null; RC=$?; }
ok() { echo "ok - $TEST: $1"; }
notok() { echo "not ok - $TEST: $1"; sed 's/^/#   out: /' "$OUT" | head -20; sed 's/^/#   err: /' "$ERR" | head -20; }
expect_rc() { if [ "$RC" = "$1" ]; then ok "$2 (exit $1)"; else notok "$2 (exit $RC, wanted $1)"; fi; }
expect_out() { if grep -qF -- "$1" "$OUT"; then ok "$2"; else notok "$2: stdout lacks '$1'"; fi; }
expect_err() { if grep -qF -- "$1" "$ERR"; then ok "$2"; else notok "$2: stderr lacks '$1'"; fi; }
expect_no() { if grep -qF -- "$1" "$OUT" "$ERR"; then notok "$2: output has '$1'"; else ok "$2"; fi; }
