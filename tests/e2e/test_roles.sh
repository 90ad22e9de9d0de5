#!/bin/sh
# End to end, roles and access (issue 12): bootstrap, preflight through a PIM-eligible group and
# for an app missing Exchange.ManageAsApp (tests/e2e/roles_access.lua), and each bundled
# runbook's needs against what it calls (tests/e2e/roles_needs.lua).  Each driver prints TAP.
T2T=${T2T:-build/t2t}
rc=0
"$T2T" tests/e2e/roles_access.lua || rc=1
"$T2T" tests/e2e/roles_needs.lua || rc=1
exit $rc
