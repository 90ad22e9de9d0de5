# The build and test plumbing: plain `make` needs only the build dependencies, `make test` ends
# with its summary line, and tests/run.sh reports progress per layer (each Lua file is one).
. tests/cli/lib.sh
TEST=make
unset MAKELEVEL MAKEFLAGS MFLAGS   # run as by an admin, also when make test runs us (no "Entering directory")
build=$(sh tools/deps.sh --list build); testd=$(sh tools/deps.sh --list test)
leak=""
for p in lua-unit tmux valgrind nghttp2-server curl lua-check cppcheck lua5.4 perl; do
  case " $build " in *" $p "*) leak="$leak $p" ;; esac
done
if [ -z "$leak" ]; then ok "the build set has no test, bench or lint package"
else notok "the build set has no test, bench or lint package (it has:$leak)"; fi
case " $testd " in *" tmux "*" valgrind "*) ok "the test set has them" ;; *) notok "the test set has them ($testd)" ;; esac

# what plain make would run: the build check only (a fresh build directory, dry run)
B2=$(mktemp -d)
make -n B="$B2" all > "$OUT" 2>"$ERR"
if grep -q 'tools/deps.sh build' "$OUT" && ! grep -qE 'tools/deps.sh (test|all|bench|lint)' "$OUT" &&
   ! grep -qE 'tools/deps.sh *$' "$OUT"; then ok "plain make checks only the build dependencies"
else notok "plain make checks only the build dependencies"; fi
make -n B="$B2" test > "$OUT" 2>"$ERR"
if grep -q 'tools/deps.sh test' "$OUT"; then ok "make test checks the test dependencies"
else notok "make test checks the test dependencies"; fi
if tail -1 "$OUT" | grep -q 'sh tests/run.sh$'; then ok "nothing runs after the tests (no make 'rm' line after the summary)"
else notok "nothing runs after the tests: last line is '$(tail -1 "$OUT")'"; fi
rm -rf "$B2"

# tests/run.sh: one line per Lua file as it finishes, and the summary as the very last line
TESTS=lua/test_pretty sh tests/run.sh > "$OUT" 2>"$ERR"
if grep -qE '^lua/test_pretty +[0-9]+ passed, 0 failed' "$OUT"; then ok "each Lua test file is a layer with its own progress line"
else notok "each Lua test file is a layer with its own progress line"; fi
if tail -1 "$OUT" | grep -qE '^[0-9]+ passed, 0 failed, [0-9]+ skipped$'; then ok "the summary is the last line"
else notok "the summary is the last line"; fi
