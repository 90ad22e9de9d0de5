-- t2t.batch.plan: which users go in which batch (ms-setup-and-prep.md §5.6, §6.3).  At most
-- 2,000 users a batch; a mailbox and the people who hold permissions on it -- FullAccess, SendAs,
-- Send on Behalf, calendar delegates -- move in one batch, because cross-tenant permissions do
-- not work: planning keeps each such group (a connected component of the delegation links)
-- together, and says which links it had to cut (a group larger than a batch) and which users it
-- moved away from the batch a list asked for.  Pure: no I/O.
--
--   plan.make(users, {size = 2000, prefix = "t2t", keep = false, pinned = {[addr] = batch}})
--     users: {target = address, source = address, batch = wanted name | nil, names = {identities},
--             delegates = {FullAccess = {...}, SendAs = {...}, SendOnBehalf = {...}, Calendar = {...}}}
--   -> {batches = {{name, users = {u...}}}, moved = {{user, from, to, because}},
--       cut = {{user, delegate, kind, batch, other}}, outside = {{user, delegate, kind}}}
local M = {}
local lower, fmt = string.lower, string.format

M.MAX = 2000
M.KINDS = { "FullAccess", "SendAs", "SendOnBehalf", "Calendar" }
M.KIND_NAME = { FullAccess = "FullAccess", SendAs = "SendAs", SendOnBehalf = "Send on Behalf",
                Calendar = "calendar delegate" }

-- Union-find over user indexes.
local function finder(n)
  local parent = {}
  for i = 1, n do parent[i] = i end
  local function find(i)
    while parent[i] ~= i do parent[i] = parent[parent[i]]; i = parent[i] end
    return i
  end
  local function union(a, b)
    a, b = find(a), find(b)
    if a ~= b then if a < b then parent[b] = a else parent[a] = b end end
  end
  return find, union
end

-- The delegation links between users of the list, and the delegates outside it.
local function links(users)
  local by = {}
  for i, u in ipairs(users) do
    for _, k in ipairs(u.names or {}) do if k and k ~= "" then by[lower(k)] = by[lower(k)] or i end end
    by[lower(u.target)] = i
    if u.source then by[lower(u.source)] = by[lower(u.source)] or i end
  end
  local edges, outside = {}, {}
  for i, u in ipairs(users) do
    for _, kind in ipairs(M.KINDS) do
      for _, d in ipairs(u.delegates and u.delegates[kind] or {}) do
        local j = by[lower(d)]
        if j and j ~= i then edges[#edges + 1] = { i, j, kind, d }
        elseif not j then outside[#outside + 1] = { user = u, delegate = d, kind = kind } end
      end
    end
  end
  return edges, outside
end

-- Components (lists of user indexes, in list order), largest first, then by first member.
local function components(n, edges)
  local find, union = finder(n)
  for _, e in ipairs(edges) do union(e[1], e[2]) end
  local by, out = {}, {}
  for i = 1, n do
    local r = find(i)
    if not by[r] then by[r] = {}; out[#out + 1] = by[r] end
    table.insert(by[r], i)
  end
  table.sort(out, function(a, b) if #a ~= #b then return #a > #b end return a[1] < b[1] end)
  return out
end

-- A component larger than a batch, in chunks of `size` along a breadth-first walk (neighbours
-- stay close, so few links are cut).
local function split(comp, edges, size)
  local adj, member = {}, {}
  for _, i in ipairs(comp) do adj[i], member[i] = {}, true end
  for _, e in ipairs(edges) do
    if member[e[1]] then table.insert(adj[e[1]], e[2]); table.insert(adj[e[2]], e[1]) end
  end
  local order, seen = {}, {}
  for _, start in ipairs(comp) do
    if not seen[start] then
      local q, h = { start }, 1
      seen[start] = true
      while h <= #q do
        local i = q[h]; h = h + 1
        order[#order + 1] = i
        table.sort(adj[i])
        for _, j in ipairs(adj[i]) do if not seen[j] then seen[j] = true; q[#q + 1] = j end end
      end
    end
  end
  local chunks = {}
  for k, i in ipairs(order) do
    local c = (k - 1) // size + 1
    chunks[c] = chunks[c] or {}
    table.insert(chunks[c], i)
  end
  return chunks
end

-- The batch for each component: a pinned user's batch, else the batch the list asks for most.
local function wanted(comp, users, pinned)
  local votes, first = {}, nil
  for _, i in ipairs(comp) do
    local u = users[i]
    local b = pinned[lower(u.target)]
    if b then return b end
    if u.batch and u.batch ~= "" then
      votes[u.batch] = (votes[u.batch] or 0) + 1
      first = first or u.batch
    end
  end
  local best = first
  for b, n in pairs(votes) do
    if n > votes[best] or (n == votes[best] and b < best) then best = b end
  end
  return best
end

-- make(users, opts) -> the plan (see the header).
function M.make(users, opts)
  opts = opts or {}
  local size = math.min(opts.size or M.MAX, M.MAX)
  local prefix = opts.prefix or "t2t"
  local pinned = {}
  for k, v in pairs(opts.pinned or {}) do pinned[lower(k)] = v end
  local edges, outside = links(users)
  local result = { batches = {}, moved = {}, cut = {}, outside = outside }
  local batches, order = {}, {}
  local function bin(name)
    if not batches[name] then batches[name] = { name = name, users = {} }; order[#order + 1] = name end
    return batches[name]
  end
  local assign, free = {}, {}
  for _, comp in ipairs(components(#users, edges)) do
    local name = wanted(comp, users, pinned)
    local rest = {}
    for _, i in ipairs(comp) do
      local u = users[i]
      local p = pinned[lower(u.target)]
      if p then assign[i] = p                   -- already in that batch: it stays there
      elseif opts.keep and u.batch and u.batch ~= "" then assign[i] = u.batch
      else rest[#rest + 1] = i end
    end
    if #rest > 0 then
      if name then for _, i in ipairs(rest) do assign[i] = name end
      else free[#free + 1] = rest end
    end
  end
  -- unassigned groups: first fit into new numbered batches of a balanced size (largest first)
  local nfree = 0
  for _, c in ipairs(free) do nfree = nfree + #c end
  local k = math.max(1, math.ceil(nfree / size))
  local target = math.ceil(nfree / k)
  local fresh, n = {}, 0
  local function next_name()
    repeat n = n + 1 until not batches[prefix .. "-" .. n]
    return prefix .. "-" .. n
  end
  for _, c in ipairs(free) do
    local chunks = #c > size and split(c, edges, size) or { c }
    for _, chunk in ipairs(chunks) do
      local home
      for _, f in ipairs(fresh) do
        if f.count + #chunk <= target then home = f break end
      end
      if not home then
        for _, f in ipairs(fresh) do if f.count + #chunk <= size then home = f break end end
      end
      if not home then home = { name = next_name(), count = 0 }; fresh[#fresh + 1] = home end
      home.count = home.count + #chunk
      for _, i in ipairs(chunk) do assign[i] = home.name end
    end
  end
  -- batches named in the list may overflow: the overflow goes on in NAME-2, NAME-3 ...
  local count = {}
  for i, u in ipairs(users) do
    local name = assign[i]
    count[name] = (count[name] or 0) + 1
    if count[name] > size then
      local j = (count[name] - 1) // size + 1
      assign[i] = name .. "-" .. j
    end
    local b = bin(assign[i])
    b.users[#b.users + 1] = u
    u.planned_batch = assign[i]
    if u.batch and u.batch ~= "" and u.batch ~= assign[i] and not pinned[lower(u.target)] then
      result.moved[#result.moved + 1] = { user = u, from = u.batch, to = assign[i] }
    end
  end
  for _, e in ipairs(edges) do
    local a, b = users[e[1]], users[e[2]]
    if a.planned_batch ~= b.planned_batch then
      result.cut[#result.cut + 1] = { user = a, delegate = e[4], kind = e[3], batch = a.planned_batch,
                                      other = b.planned_batch }
    end
  end
  for _, name in ipairs(order) do
    if #batches[name].users > 0 then result.batches[#result.batches + 1] = batches[name] end
  end
  return result
end

-- Why a user was moved: the delegation link that pulled it (for the plan's report).
function M.describe(result)
  local lines = {}
  for _, m in ipairs(result.moved) do
    lines[#lines + 1] = fmt("%s: in %s, not %s -- it shares permissions with users there", m.user.target, m.to, m.from)
  end
  for _, c in ipairs(result.cut) do
    lines[#lines + 1] = fmt("cut: %s (%s) has %s on %s (%s): the group is larger than a batch; the " ..
      "permission stops working until both have moved", c.delegate, c.other, M.KIND_NAME[c.kind] or c.kind,
      c.user.target, c.batch)
  end
  return lines
end

return M
