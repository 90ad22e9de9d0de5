-- dkim-verify: verify the DKIM signatures of real messages (.eml files), keys from DNS.
local verify = require "t2t.dkim.verify"
local rb = require "t2t.dkim.runbooks"

local files = require "t2t.files"

-- A message file: a regular file, size-capped (t2t.files), never a FIFO or a device.
local function read(path) return files.read(path, "data") end

return runbook {
  name = "dkim-verify",
  description = "Verify the DKIM signatures of messages: t2t run dkim-verify FILE.eml [FILE.eml ...]\n\n" ..
    "RFC 6376 with RFC 8301 (rsa-sha1 and RSA keys under 1024 bits never pass) and RFC 8463 (ed25519-sha256).\n" ..
    "Prints one Authentication-Results line per message (dkim=pass|fail|permerror|temperror|policy per\n" ..
    "signature, with header.d/s/a) and what to watch: unsigned body bytes after l=, several From fields,\n" ..
    "whether a passing signature aligns with the From domain (DMARC). Keys come from DNS (--dns HOST:PORT,\n" ..
    "the simulator's under --sim). Exit 3 when some messages have no passing signature, 1 when none has.",
  rest = "file",
  needs = {},                 -- message files on this machine and public DNS: no tenant
  params = {
    { name = "file", type = "list", required = true, help = "message files (.eml, LF or CRLF); also without --file" },
    { name = "now", type = "integer", help = "verify as of this Unix time (expired x= signatures; test corpora)" },
    { name = "max-signatures", type = "integer", default = verify.MAX_SIGNATURES, help = "signatures verified per message" },
    { name = "authserv-id", type = "string", default = "t2t", help = "the authserv-id of the Authentication-Results lines" },
  },
  run = function(ctx, p)
    local resolver = rb.resolver(ctx)
    local v = verify.new { resolver = resolver, now = p.now, max_signatures = p.max_signatures }
    local out = { messages = {} }
    local pass_n = 0
    for _, path in ipairs(p.file) do
      local raw, err = read(path)
      local res
      if not raw then
        res = { file = path, error = tostring(err) }
        ctx:say("%s", tostring(err))
        ctx:item(path, false, err)
      else
        res = v:verify(raw)
        res.file = path
        local passed
        for _, s in ipairs(res.signatures) do
          if s.result == "pass" then
            passed = true
            s.aligned = verify.aligned(s.d, res.from_domain)
          end
        end
        ctx:say("%s\n%s", path, v:authentication_results(res, p.authserv_id))
        for _, s in ipairs(res.signatures) do
          if s.result == "pass" then
            ctx:say("  d=%s s=%s %s%s: %s with From %s", s.d, s.s, s.a, s.testing and " (key in testing mode t=y)" or "",
                    s.aligned and ("aligned (" .. s.aligned .. ")") or "not aligned", tostring(res.from_domain))
          end
        end
        for _, w in ipairs(res.warnings) do ctx:say("  warning: %s", w) end
        if passed then pass_n = pass_n + 1 end
        ctx:item(path, passed == true, not passed and "no passing DKIM signature" or nil)
      end
      out.messages[#out.messages + 1] = res
    end
    ctx:summary("messages", #p.file)
    ctx:summary("with a passing signature", pass_n)
    ctx:summary("key lookups", v.lookups)
    return out
  end,
}
