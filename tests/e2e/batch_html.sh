#!/bin/sh
# The HTML report in a real browser: headless Chromium (Debian's `chromium`) opens it from a file,
# takes a screenshot, and dumps the DOM its script left.  The page must write nothing to the
# console (an error, a refused request -- its Content-Security-Policy allows none -- would show
# there), its own check of the charts must pass, and the charts must hold the expected series.
# A page with a script error is shown to fail the same check, so the check can fail.
# Sourced by test_batch.sh with REPORT (absolute path) and DIR set, and lib.sh's helpers loaded.
CHROME=$(command -v chromium || command -v chromium-browser)
if [ -z "$CHROME" ]; then
  echo "ok - $TEST: the HTML report in headless Chromium # SKIP chromium is not installed (sh tools/deps.sh test)"
  return 0 2>/dev/null || exit 0
fi
# no network (every host name resolves to nothing; nothing in the background), a profile of its
# own per run; one after the other (side by side they only wait for each other)
chrome() { # chrome NAME ARGS...
  n=$1; shift
  timeout 90 "$CHROME" --headless=new --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --host-resolver-rules="MAP * ~NOTFOUND" --disable-background-networking --disable-component-update \
    --disable-domain-reliability --no-pings --disable-sync --disable-extensions --disable-breakpad \
    --user-data-dir="$DIR/chrome-$n" --enable-logging=stderr --v=0 "$@" 2> "$DIR/chrome-$n.err"
}
printf '<!DOCTYPE html><html><body><p>x</p><script>missing();</script></body></html>\n' > "$DIR/broken.html"
chrome broken --dump-dom "file://$DIR/broken.html" > /dev/null
chrome dom --dump-dom "file://$REPORT" > "$DIR/dom.html"
chrome shot --window-size=1280,2000 --screenshot="$DIR/report.png" "file://$REPORT" > /dev/null
if grep -q CONSOLE "$DIR/chrome-broken.err"; then ok "browser: a page with a script error is caught (the check can fail)"
else notok "browser: a page with a script error is caught"; tail -3 "$DIR/chrome-broken.err" | sed 's/^/#   /'; fi
msgs=$(cat "$DIR/chrome-dom.err" "$DIR/chrome-shot.err" | grep CONSOLE)
if [ -z "$msgs" ]; then ok "browser: the report writes nothing to the console (no error, no request refused)"
else notok "browser: the report writes nothing to the console"; echo "$msgs" | head -5 | sed 's/^/#   /'; fi
grep -q 'data-charts-ok="yes"' "$DIR/dom.html" && ok "browser: the page's own check finds every chart's series" \
  || notok "browser: the page's own check finds every chart's series"
missing=
for s in synced-wave1 completed-wave1 synced-wave2 completed-wave2 synced-wave1-retry1 states-wave1 states-wave2 \
         throughput-wave1 throughput-wave2 failures; do
  grep -q "data-series=\"$s\"" "$DIR/dom.html" || missing="$missing $s"
done
if [ -z "$missing" ]; then ok "browser: the charts hold the series of every batch (progress, states, throughput) and the failures"
else notok "browser: the charts hold the expected series (missing:$missing)"; fi
size=$(stat -c %s "$DIR/report.png" 2>/dev/null || echo 0)
if [ "$(head -c 8 "$DIR/report.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && [ "$size" -gt 50000 ]; then
  ok "browser: a screenshot of the report ($size bytes of PNG)"
else notok "browser: a screenshot of the report"; fi
