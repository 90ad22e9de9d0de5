-- Shared set-up for the HTTP and server tests and benchmarks (not a handler):
-- a throwaway CA and server certificate (openssl CLI, into a temp dir) and the embedded HTTPS
-- server on loopback running tests/lua/handlers/http_sim.lua.
local server = require "t2t.core.server"

local M = {}
M.HANDLER = "tests.lua.handlers.http_sim"

local function sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end
M.sh = sh

local function readfile(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
M.readfile = readfile

function M.writefile(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local tls

-- {dir, ca (file), ca_pem, cert, key, other_cert, other_key (self-signed, not from the CA)}
function M.certs()
  if tls then return tls end
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -m 700 " .. dir))
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
  local out, code = sh(table.concat({
    "cd " .. dir,
    "openssl req -x509 " .. ec .. " -keyout ca.key -out ca.pem -days 2 -subj /CN=t2t-http-test-CA",
    "openssl req " .. ec .. " -keyout srv.key -out srv.csr -subj /CN=localhost",
    "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:graph.microsoft.com\\n" ..
      "basicConstraints=CA:FALSE\\n' > ext",
    "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 " ..
      "-extfile ext -out srv.pem",
    "openssl req -x509 " .. ec .. " -keyout self.key -out self.pem -days 2 -subj /CN=localhost " ..
      "-addext subjectAltName=IP:127.0.0.1,DNS:localhost",
  }, " && "))
  assert(code == 0, out)
  tls = { dir = dir, ca = dir .. "/ca.pem", ca_pem = readfile(dir .. "/ca.pem"),
          cert = readfile(dir .. "/srv.pem"), key = readfile(dir .. "/srv.key"),
          other_cert = readfile(dir .. "/self.pem"), other_key = readfile(dir .. "/self.key") }
  return tls
end

function M.cleanup()
  if tls then os.execute("rm -rf " .. tls.dir) end
  tls = nil
end

-- start{...} -> server, base URL ("https://127.0.0.1:PORT")
function M.start(opts)
  opts = opts or {}
  local t = M.certs()
  opts.port = opts.port or 0
  opts.cert_pem = opts.cert_pem or t.cert
  opts.key_pem = opts.key_pem or t.key
  opts.handler_module = opts.handler_module or M.HANDLER
  local s = assert(server.start(opts))
  return s, "https://127.0.0.1:" .. s:port()
end

-- class(on_start) -> a LuaUnit class whose setupClass starts the server and calls
-- on_start(server, base, ca_file), and whose teardownClass stops it and removes the certificates.
function M.class(on_start)
  local C, srv = {}, nil
  function C.setupClass()
    local base
    srv, base = M.start()
    on_start(srv, base, M.certs().ca)
  end
  function C.teardownClass()
    if srv then srv:stop() end
    srv = nil
    M.cleanup()
  end
  return C
end

return M
