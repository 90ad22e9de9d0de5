#!/bin/sh
# The DKIM differential test (tests/dkim/diff.lua): t2t against dkimpy and OpenDKIM on 1,200
# generated messages.  Skipped when python3-dkim or opendkim is not installed.
T2T=${T2T:-build/t2t}
if [ ! -x /usr/bin/python3 ] || ! /usr/bin/python3 -c 'import dkim' 2>/dev/null || ! command -v opendkim >/dev/null; then
  echo "ok - dkim differential test # SKIP python3-dkim or opendkim is not installed"
  exit 0
fi
"$T2T" tests/dkim/diff.lua "${T2T_DIFF_N:-1200}"
