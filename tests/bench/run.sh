#!/bin/sh
# make bench: every tests/bench/bench_*.sh (or .lua, run inside t2t) prints lines
# "bench: NAME = VALUE", each a ratio or figure measured within this one run.
B=${T2T_BUILD:-build}
export T2T="$B/t2t"
export LUA_PATH="./?.lua;;"            # the benchmarks' helper modules (tests.lua.handlers.*)
for b in tests/bench/bench_*; do
  case "$b" in
    *.sh) sh "$b" ;;
    *.lua) "$T2T" "$b" ;;
  esac
done
