# The host under valgrind: start-up, a runbook, the Lua unit tests of the host's own modules,
# and each plugin loaded once.  Any error or definite leak fails.  (The HTTP, server and crypto
# suites run their own heavier valgrind checks.)
. tests/cli/lib.sh
TEST=valgrind
case "$T2T" in *san/*) echo "ok - valgrind # SKIP not under a sanitizer build"; exit 0 ;; esac
if ! command -v valgrind >/dev/null; then echo "ok - valgrind # SKIP valgrind is not installed"; exit 0; fi
vg() { # vg NAME ARGS...: run t2t under valgrind
  name=$1; shift
  valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    "$T2T" "$@" >"$OUT" 2>"$ERR" </dev/null
  RC=$?
  if [ "$RC" = 99 ]; then notok "$name: valgrind found errors"; else ok "$name"; fi
}
vg "-e with cjson" -e 'print(require("cjson").encode({a = 1}))'
vg "a runbook" run doctor
vg "host Lua tests" tests/lua/run.lua test_runbook
for so in "$(dirname "$T2T")"/lib/t2t/*.so; do
  [ -f "$so" ] || continue
  m=$(basename "$so" .so)
  vg "plugin $m loads and unloads" -e "require('t2t.core.$m')"
done
