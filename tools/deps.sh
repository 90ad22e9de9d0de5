#!/bin/sh
# Check the Debian 12 packages t2t builds, tests and benchmarks with.  As root, install the
# missing ones; otherwise print the exact apt-get line and fail.
# Why each one: Lua 5.4 + headers (the host), lua-cjson (JSON), libcurl (HTTP), OpenSSL (crypto,
# and the openssl CLI for cross-checks in tests), libedit (REPL), libmicrohttpd (simulator server),
# lua-unit (Lua tests), lua5.4 (the start-up benchmark's baseline), pkg-config (the build),
# tmux (the REPL test drives t2t through a pseudo-terminal), curl (the server tests' independent
# client), valgrind (the leak and memory-error checks), perl (the start-up bench's timer),
# nghttp2-server (nghttpd: an HTTP/2 peer, since the embedded server speaks HTTP/1.1 only).
# Test-only, and only when no `node` is on the PATH: nodejs + npm, which run Microsoft's own
# client libraries against the simulator (tests/compat; Node >= 20 is what their pins declare).
# A Node.js already installed from elsewhere (with its own npm) is left alone.
PKGS="liblua5.4-dev lua5.4 lua-cjson-dev libcurl4-openssl-dev libssl-dev openssl libedit-dev
lua-unit libmicrohttpd-dev pkg-config tmux curl valgrind perl nghttp2-server"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
command -v node >/dev/null 2>&1 || missing="$missing nodejs npm"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "deps: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q $missing >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $missing >/dev/null; } ||
    { echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
  exit 0
fi
echo "t2t needs these Debian packages:$missing" >&2
echo "install them with:" >&2
echo "  sudo apt-get install -y$missing" >&2
exit 1
