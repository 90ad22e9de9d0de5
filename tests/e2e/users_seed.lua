-- The state the users e2e test starts from: the seeded pair plus the mixed population of
-- users_mixed.json (one user per rule of ms-setup-and-prep.md §3.2 and §5), built through the
-- simulator's scenario support, no code:
--   build/t2t tests/e2e/users_seed.lua STATE.json
local s = assert(require("t2t.sim").start { users = 6, seed = 5, state = arg[1],
                                            scenario = "tests/e2e/users_mixed.json" })
assert(s:stop())
