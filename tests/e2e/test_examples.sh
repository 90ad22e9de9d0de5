# The worked examples of docs/runbooks.md (examples/), run as the guide runs them against one
# simulator state file: --plan changes nothing, the real run changes what differs, a re-run
# changes nothing; exit codes and summaries as the guide shows them.
. tests/cli/lib.sh
TEST=examples
D=$(mktemp -d)
trap 'rm -rf "$D" "$OUT" "$OUT.1" "$ERR"' EXIT
S="$D/state.json"
count() { grep -c "$1" "$OUT" | tr -d ' '; }

# example 1: set CustomAttribute1 on every mailbox of a group
t2t_run run examples/set-attribute.lua --sim="$S" --group "Finance Team" --value FIN --plan
expect_rc 0 "set-attribute --plan"
n=$(count '^would ~ update mailbox')
if [ "$n" -gt 0 ]; then ok "--plan shows $n updates"; else notok "--plan shows updates"; fi
expect_out "changes planned  " "and counts them as planned"
expect_out "is synced from on-premises: set CustomAttribute1 there" "dir-synced mailboxes are skipped with the reason"
t2t_run run examples/set-attribute.lua --sim="$S" --group "Finance Team" --value FIN --audit "$D/audit.jsonl"
expect_rc 0 "set-attribute"
if [ "$(count '^~ update mailbox')" = "$n" ]; then ok "the real run makes the $n planned changes"; else notok "the real run makes the $n planned changes"; fi
if [ "$(grep '"phase":"outcome"' "$D/audit.jsonl" | grep '"result":"ok"' | grep -c '"operation":"Set-Mailbox"')" = "$n" ]; then
  ok "each change is in the audit file"
else notok "each change is in the audit file"; fi
t2t_run run examples/set-attribute.lua --sim="$S" --group "Finance Team" --value FIN
expect_rc 0 "set-attribute again"
if [ "$(count 'update mailbox')" = 0 ] && grep -qE "already FIN +$n$" "$OUT"; then ok "a re-run changes nothing"
else notok "a re-run changes nothing"; fi
t2t_run run examples/set-attribute.lua --sim="$S" --group "No Such Group" --value FIN
expect_rc 1 "an unknown group fails"; expect_err "cannot read the members of group 'No Such Group'" "naming the group"
expect_no "stack traceback" "in one line"
t2t_run run examples/set-attribute.lua --sim="$S" --group "Finance Team" --value FIN --attribute 16
expect_rc 2 "--attribute 16 is a usage error"; expect_err "--attribute must be from 1 to 15" "saying the range"

# example 2: target MailUsers that lack their source's x500; the stand-in for prepare-users first
t2t_run --sim="$S" examples/sim-mailusers.lua
expect_rc 0 "sim-mailusers makes three target MailUsers"; expect_out "(without its x500)" "two of them without the x500"
X="examples/missing-x500.lua --sim=$S --source contoso --target fabrikam"
t2t_run run $X
expect_rc 3 "missing-x500 finds some missing: some items failed"
expect_out "items failed          2" "two of them"
t2t_run run $X --fix --plan
expect_rc 0 "--fix --plan"; expect_out "x500 to add           2" "plans two additions"
if [ "$(count '^would + add x500 address on mail user')" = 2 ]; then ok "shown as planned adds"; else notok "shown as planned adds"; fi
t2t_run run $X
expect_rc 3 "--plan changed nothing"
t2t_run run $X --fix
expect_rc 0 "--fix"; expect_out "x500 added            2" "adds the two"
t2t_run run $X
expect_rc 0 "a re-run finds nothing missing"; expect_out "items failed          0" "every MailUser has its x500"
t2t_run $X --fix
expect_rc 0 "t2t FILE.lua runs a runbook file as 't2t run' does"; expect_no "x500 added            1" "and changes nothing more"
