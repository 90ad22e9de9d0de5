# The coverage-guided fuzz targets (tests/fuzz), briefly: each replays the inputs that once
# found a bug, then fuzzes a few seconds from its seed corpus (make fuzz runs them for minutes).
# Built with Debian's clang into build/fuzz (ASan + UBSan + libFuzzer).  One line per target.
. tests/cli/lib.sh
TEST=fuzz
if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "ok - fuzz # SKIP clang and libFuzzer are not installed (sh tools/deps.sh test)"; exit 0
fi
if ! make --no-print-directory -s FUZZ=1 fuzz-targets >"$OUT" 2>"$ERR"; then
  notok "the fuzz targets build"; exit 0
fi
ok "the fuzz targets build"
FUZZ_TIME=${FUZZ_TEST_TIME:-3} FUZZ_JOBS=2 sh tests/fuzz/run.sh >"$OUT" 2>"$ERR"
while read -r line; do
  case "$line" in
    "fuzz: "*" ok") echo "ok - $line" ;;
    "fuzz: "*) echo "not ok - $line"; cat "$OUT" | sed 's/^/#   /' | head -20 ;;
  esac
done < "$OUT"
grep -q '^fuzz: ' "$OUT" || notok "the fuzz targets ran"
