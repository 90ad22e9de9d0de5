-- A fake t2t.http client for client tests (not a handler): it calls simulated services'
-- handle(sim, req) in-process, with lower-cased headers both ways, and records each call.
--   local http = require("tests.lua.handlers.sim_http")(sim, function(host) return svc end)
--   http.calls[i] = {method, url, headers}
return function(sim, service_for)
  local h = { calls = {} }
  function h:request(o)
    local host, path = o.url:match("^https://([^/]+)(/.*)$")
    local headers = {}
    for k, v in pairs(o.headers or {}) do headers[k:lower()] = v end
    self.calls[#self.calls + 1] = { method = o.method, url = o.url, headers = headers }
    local res = service_for(host).handle(sim, { method = o.method, path = path, host = host,
                                                headers = headers, body = o.body })
    local rh = {}
    for k, v in pairs(res.headers or {}) do rh[k:lower()] = v end
    return { status = res.status, headers = rh, body = res.body }
  end
  return h
end
