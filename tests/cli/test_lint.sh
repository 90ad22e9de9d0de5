# The lint `make lint` runs (tools/lint.sh): cppcheck over the C, luacheck over the Lua with
# .luacheckrc.  One ok/not ok line per half, from its closing "lint: ..." line.
TEST=lint
out=$(sh tools/lint.sh 2>&1); rc=$?
echo "$out" | grep -q '^lint: cppcheck checked [0-9]* C files.*no findings$' &&
  echo "ok - $TEST: C (cppcheck)" || echo "not ok - $TEST: C (cppcheck)"
echo "$out" | grep -q '^lint: luacheck checked [0-9]* Lua files.*no warnings$' &&
  echo "ok - $TEST: Lua (luacheck, .luacheckrc)" || echo "not ok - $TEST: Lua (luacheck, .luacheckrc)"
[ $rc = 0 ] || echo "$out" | sed 's/^/#   /'
# the lint must be able to fail: a module that reads a misspelt global and has an unused local
tmp=$(mktemp -d)
mkdir -p "$tmp/lua"
printf 'local M = {}\nfunction M.f()\n  local unused = 1\n  return prnt("x")\nend\nreturn M\n' > "$tmp/lua/bad.lua"
out=$(sh tools/lint-lua.sh "$tmp/lua" 2>&1); rc=$?
if [ $rc != 0 ] && echo "$out" | grep -q "accessing undefined variable 'prnt'" &&
   echo "$out" | grep -q "unused variable 'unused'"; then
  echo "ok - $TEST: luacheck reports a misspelt global and an unused local"
else
  echo "not ok - $TEST: luacheck reports a misspelt global and an unused local"; echo "$out" | sed 's/^/#   /'
fi
rm -rf "$tmp"
