-- A handler whose init fails: server.start must return nil, err.
return { init = function(arg) error("init refused " .. tostring(arg)) end, handle = function() end }
