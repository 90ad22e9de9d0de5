-- luacheck (Debian: lua-check) settings for t2t; `make lint` runs it over lua/ scripts/ examples/
-- tools/ and `make test` runs `make lint`'s Lua half.  Lua 5.4, as embedded in t2t.
std = "lua54"
max_line_length = false            -- long lines are allowed here (messages, tables of data)

-- Generated from ../shared/reference by tools/gen-*.lua: checked at their source, not here.
exclude_files = { "lua/t2t/sim/graph_schema.lua", "lua/t2t/exo_cmdlets.lua", "build/**" }

-- The runbook environment: what a runbook file may read besides the standard library.  Copy
-- this stanza into the .luacheckrc beside your own runbooks (docs/runbooks.md, "Lint").
stds.t2t_runbook = { read_globals = { "runbook", "connect" } }
files["scripts/"] = { std = "lua54+t2t_runbook" }
files["examples/"] = { std = "lua54+t2t_runbook" }

