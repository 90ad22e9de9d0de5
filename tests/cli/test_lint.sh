# Every Lua file compiles, and no module writes a global or reads an unknown one.
TEST=lint
files=$(find lua scripts -name '*.lua' | sort)
if out=$(sh tools/lint-lua.sh $files 2>&1); then
  echo "ok - $TEST: $(echo "$files" | wc -l | tr -d ' ') Lua files: no global writes, no unknown globals"
else
  echo "not ok - $TEST: Lua lint"; echo "$out" | sed 's/^/#   /'
fi
