-- t2t.sim.router: which service answers a request — by Host header (docs/simulator.md, "Hosts
-- → services"); any path under /_sim/ goes to the control API whatever the host.  Service
-- modules load on first use, so a missing one answers 501 instead of breaking the others.
local M = {}

-- host (lower case, no port) -> service name
M.HOSTS = {
  ["login.microsoftonline.com"] = "login",
  ["graph.microsoft.com"] = "graph",
  ["outlook.office365.com"] = "exo",
  ["outlook.office.com"] = "exo",
  ["management.azure.com"] = "arm",
  ["sim.t2t.test"] = "control",
}
M.MODULES = {
  login = "t2t.sim.login", graph = "t2t.sim.graph", exo = "t2t.sim.exo",
  arm = "t2t.sim.arm", keyvault = "t2t.sim.keyvault", control = "t2t.sim.control",
}
-- Every host the simulator serves (for certificates and connect_to); *.vault.azure.net is
-- served too, with a wildcard SAN.
M.CERT_HOSTS = { "login.microsoftonline.com", "graph.microsoft.com", "outlook.office365.com",
                 "outlook.office.com", "management.azure.com", "*.vault.azure.net",
                 "vault.azure.net", "sim.t2t.test", "localhost" }

-- host_of(req) -> the Host header lower-cased without its port ("" when absent).
function M.host_of(req)
  local h = req.headers and req.headers.host or ""
  h = h:lower()
  if h:sub(1, 1) == "[" then return h:match("^(%b[])") or h end
  return (h:gsub(":%d+$", ""))
end

-- service(host, path) -> service name | nil.
function M.service(host, path)
  if path:sub(1, 6) == "/_sim/" or path == "/_sim" then return "control" end
  local s = M.HOSTS[host]
  if s then return s end
  if host:sub(-16) == ".vault.azure.net" then return "keyvault" end
  return nil
end

local loaded, failed = {}, {}

-- module(name) -> service module | nil, err (cached; a load error is kept and reported).
function M.module(name)
  local m = loaded[name]
  if m then return m end
  if failed[name] then return nil, failed[name] end
  local ok, mod = pcall(require, M.MODULES[name])
  if not ok or type(mod) ~= "table" or type(mod.handle) ~= "function" then
    failed[name] = ok and ("module " .. M.MODULES[name] .. " has no handle(sim, req)") or tostring(mod)
    return nil, failed[name]
  end
  loaded[name] = mod
  return mod
end

return M
