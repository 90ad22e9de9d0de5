-- Minimal handler (a plain function): the benchmark's and the start/stop loop's.
return function(req)
  return { status = 200, headers = { ["content-type"] = "text/plain" }, body = "hello " .. req.path }
end
