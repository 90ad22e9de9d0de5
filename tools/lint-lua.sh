#!/bin/sh
# Lua lint: every file compiles, no module writes a global, and modules read only the
# standard globals (a misspelt local shows up as an unknown global).
STD=" _G _VERSION assert collectgarbage coroutine debug dofile error getmetatable io ipairs load
loadfile math next os package pairs pcall print rawequal rawget rawlen rawset require select
setmetatable string table tonumber tostring type utf8 warn xpcall arg "
STD=$(echo "$STD" | tr '\n' ' ')
rc=0
for f in "$@"; do
  luac5.4 -p "$f" || { rc=1; continue; }
  listing=$(luac5.4 -l -p "$f")
  if echo "$listing" | grep -aq 'SETTABUP.*_ENV'; then
    echo "$f: assigns a global:"; echo "$listing" | grep -a 'SETTABUP.*_ENV' | head -3; rc=1
  fi
  case "$f" in scripts/*) continue ;; esac          # runbooks get runbook{} etc. from their env
  for g in $(echo "$listing" | grep -a 'GETTABUP.*_ENV "' | sed 's/.*_ENV "\([^"]*\)".*/\1/' | sort -u); do
    case "$STD" in *" $g "*) ;; *) echo "$f: reads unknown global '$g'"; rc=1 ;; esac
  done
done
exit $rc
