#!/bin/sh
# Check the Debian 12 packages one part of t2t needs.  As root, install the missing ones;
# otherwise print the exact apt-get line and fail.
#   sh tools/deps.sh build | test | bench | lint | fuzz | all      (default: build)
#   sh tools/deps.sh --list SET                             the packages of SET, one line
# Plain `make` needs only the build set; `make test`, `make bench` and `make lint` add theirs.
#
# build: liblua5.4-dev (the embedded Lua 5.4), lua-cjson-dev (JSON), libcurl4-openssl-dev (HTTP),
#   libssl-dev (crypto), libedit-dev (REPL line editing), libmicrohttpd-dev (the simulator's
#   server), pkg-config (the Makefile finds them with it), libc-ares-dev (DNS inside the
#   scheduler's loop).
# test: lua-unit (the Lua tests), openssl (its CLI cross-checks t2t's crypto), tmux (the REPL
#   tests drive t2t through a pseudo-terminal), curl (an independent client of the embedded
#   server), valgrind (leak and memory-error checks), nghttp2-server (nghttpd, an HTTP/2 peer:
#   the embedded server speaks HTTP/1.1 only), lua-check and cppcheck (the lint `make test` runs),
#   clang and libclang-rt-14-dev (libFuzzer and the sanitizer runtimes of the fuzz targets that
#   `make test` runs briefly and `make fuzz` at length),
#   knot (the authoritative DNS server the simulator and the DNS tests start on loopback),
#   python3-dkim, opendkim and opendkim-tools (the reference DKIM verifiers of the differential
#   test), publicsuffix (the Public Suffix List, for RFC 7489's Organizational Domain), chromium
#   (headless: the batch report's HTML is opened, checked and photographed in a real browser); and only
#   when no `node` is on the PATH, nodejs + npm (tests/compat runs Microsoft's own Node client
#   libraries against the simulator; a Node.js installed from elsewhere, with its own npm, is
#   left alone, since Debian's npm would pull Debian's nodejs over it).
# bench: lua5.4 (the start-up benchmark's baseline), perl (its fork+exec timer), knot and
#   python3-dkim (the DKIM verification benchmark: keys from a local DNS server, dkimpy as the baseline).
# lint: lua-check (luacheck, the Lua lint), cppcheck (the C lint).
BUILD="liblua5.4-dev lua-cjson-dev libcurl4-openssl-dev libssl-dev libedit-dev libmicrohttpd-dev pkg-config libc-ares-dev"
LINT="lua-check cppcheck"
FUZZ="clang libclang-rt-14-dev"
TEST="lua-unit openssl tmux curl valgrind nghttp2-server $LINT $FUZZ knot python3-dkim opendkim opendkim-tools publicsuffix chromium"
BENCH="lua5.4 perl knot python3-dkim"
list=
[ "$1" = --list ] && { list=1; shift; }
case "${1:-build}" in
  build) PKGS=$BUILD ;;
  test) PKGS=$TEST ;;
  bench) PKGS=$BENCH ;;
  lint) PKGS=$LINT ;;
  fuzz) PKGS="$BUILD $FUZZ" ;;
  all) PKGS="$BUILD $TEST $BENCH" ;;
  *) echo "usage: sh tools/deps.sh build|test|bench|lint|fuzz|all" >&2; exit 2 ;;
esac
case "${1:-build}" in
  test|all) command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs npm" ;;
esac
[ -n "$list" ] && { echo $PKGS; exit 0; }
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "deps: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q $missing >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $missing >/dev/null; } ||
    { echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
  exit 0
fi
echo "t2t (${1:-build}) needs these Debian packages:$missing" >&2
echo "install them with:" >&2
echo "  sudo apt-get install -y$missing" >&2
exit 1
