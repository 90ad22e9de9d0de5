#!/bin/sh
# `make lint`: cppcheck over the C, luacheck over the Lua (tools/lint-lua.sh).  Each half ends
# with one "lint: ..." line saying what it checked and whether it passed; exit 1 if either failed.
cd "$(dirname "$0")/.." || exit 1
rc=0
if command -v cppcheck >/dev/null 2>&1; then
  n=$(ls core/*.c core/*.h tools/*.c 2>/dev/null | wc -l | tr -d ' ')
  if cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
       --suppress=missingIncludeSystem -Icore core tools; then
    echo "lint: cppcheck checked $n C files (core tools): no findings"
  else
    echo "lint: cppcheck checked $n C files (core tools): findings above -- fix them" >&2; rc=1
  fi
else
  echo "lint: cppcheck is not installed (apt-get install cppcheck, or: make deps); C not checked" >&2; rc=1
fi
sh tools/lint-lua.sh || rc=1
exit $rc
