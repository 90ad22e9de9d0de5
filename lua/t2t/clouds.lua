-- t2t.clouds: the cloud endpoint matrix (wire.md §0).  A cloud selects every host together;
-- auth, graph, exo, azure and tenant all read their hosts from here.
--   clouds.ALL[name] = {name, login, graph, exo, arm, vault (resource), vault_suffix,
--                       remote_server (the migration endpoint's RemoteServer)}
local M = {}

local function cloud(name, base, over)
  local t = { name = name }
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(over or {}) do t[k] = v end
  return t
end

local GLOBAL = {
  login = "https://login.microsoftonline.com", graph = "https://graph.microsoft.com",
  exo = "https://outlook.office365.com", arm = "https://management.azure.com",
  vault = "https://vault.azure.net", vault_suffix = ".vault.azure.net",
  remote_server = "outlook.office.com",
}
local USGOV = {
  login = "https://login.microsoftonline.us", graph = "https://graph.microsoft.us",
  exo = "https://outlook.office365.us", arm = "https://management.usgovcloudapi.net",
  vault = "https://vault.usgovcloudapi.net", vault_suffix = ".vault.usgovcloudapi.net",
  remote_server = "outlook.office365.us",
}

-- gcc (moderate) uses the commercial hosts; usgov is Azure Government as Microsoft's tools name
-- it (the GCC High hosts).  RemoteServer values: ms-setup-and-prep.md §1.3 and §4.3.
M.ALL = {
  global = cloud("global", GLOBAL),
  gcc = cloud("gcc", GLOBAL),
  usgov = cloud("usgov", USGOV),
  usgovhigh = cloud("usgovhigh", USGOV),
  dod = cloud("dod", USGOV, { graph = "https://dod-graph.microsoft.us",
                              exo = "https://outlook-dod.office365.us",
                              remote_server = "dod-outlook.office365.us" }),
  -- China: the Exchange host is an open question (wire.md §6.3)
  china = cloud("china", {
    login = "https://login.partner.microsoftonline.cn", graph = "https://microsoftgraph.chinacloudapi.cn",
    exo = "https://outlook.office365.cn", arm = "https://management.chinacloudapi.cn",
    vault = "https://vault.azure.cn", vault_suffix = ".vault.azure.cn",
    remote_server = "partner.outlook.cn",
  }),
}
M.ALIASES = { gcchigh = "usgovhigh", commercial = "global", public = "global" }

-- clouds.get(name) -> the cloud's entry (nil name = global) | nil, message naming the choices.
function M.get(name)
  name = name or "global"
  local key = type(name) == "string" and name:lower() or nil
  local c = key and (M.ALL[key] or M.ALL[M.ALIASES[key] or ""])
  if c then return c end
  local names = {}
  for k in pairs(M.ALL) do names[#names + 1] = k end
  table.sort(names)
  return nil, string.format("unknown cloud '%s' (one of: %s)", tostring(name), table.concat(names, ", "))
end

-- clouds.of_login(url) -> the name of the cloud whose login host url is (AZURE_AUTHORITY_HOST) | nil.
function M.of_login(url)
  url = tostring(url or ""):gsub("/+$", ""):lower()
  if url == "" then return nil end
  if not url:find("://", 1, true) then url = "https://" .. url end
  for _, name in ipairs { "global", "usgov", "china" } do
    if M.ALL[name].login == url then return name end
  end
  if url == "https://login.chinacloudapi.cn" then return "china" end
end

-- clouds.map(field) -> {cloud name or alias = that cloud's field}, e.g. map("graph").
function M.map(field)
  local out = {}
  for name, c in pairs(M.ALL) do out[name] = c[field] end
  for alias, name in pairs(M.ALIASES) do out[alias] = M.ALL[name][field] end
  return out
end

return M
