#!/bin/sh
# Lua lint: luacheck (Debian's lua-check) over the Lua we ship, with the settings in .luacheckrc
# (Lua 5.4; the runbook environment for scripts/ and examples/; generated files excluded).
# Finds what a compiler does not: unknown or misspelt globals, unused locals and arguments,
# shadowing, unreachable code.  Ends with one line saying what it checked and the result.
#   sh tools/lint-lua.sh [DIR|FILE ...]      (default: lua scripts examples tools)
cd "$(dirname "$0")/.." || exit 1
if ! command -v luacheck >/dev/null 2>&1; then
  echo "lint: luacheck is not installed (apt-get install lua-check, or: make deps)" >&2
  exit 1
fi
if [ $# -eq 0 ]; then for d in lua scripts examples tools; do [ -e "$d" ] && set -- "$@" "$d"; done; fi
out=$(luacheck --no-color --codes -q "$@" 2>&1)
rc=$?
total=$(echo "$out" | sed -n 's/^Total: \([0-9]*\) warnings* \/ \([0-9]*\) errors* in \([0-9]*\) files*$/\1 \2 \3/p')
set -- "$*" $total
if [ $rc -eq 0 ]; then
  echo "lint: luacheck checked $4 Lua files ($1): no warnings"
  exit 0
fi
echo "$out" | grep -E ':[0-9]+:[0-9]+:' | sed 's/^ *//'
echo "lint: luacheck checked ${4:-?} Lua files ($1): ${2:-?} warnings, ${3:-?} errors -- fix them (see .luacheckrc)" >&2
exit 1
