/* fuzz_x509 — the certificate, key and PKCS#12 loaders (core/x509.c, core/crypto.c) and the
 * Lua layer over them (t2t.crypto.load_credential, rsa_from_xml, public_key_from).  The first
 * byte picks the loader; the rest is the file's bytes.  Every loader must answer a value or
 * nil, err: never raise, never crash, never trip a sanitizer. */
#include "fuzz.h"

static lua_State *L;

static const char *SETUP =
    "local crypto = require 't2t.crypto'\n"
    "local C, X = require 't2t.core.crypto', require 't2t.core.x509'\n"
    "local loaders = {\n"
    "  function(d) return X.load_cert(d) end,\n"
    "  function(d) return X.load_certs(d) end,\n"
    "  function(d) return C.load_key(d) end,\n"
    "  function(d) return C.load_key(d, 'pw') end,\n"
    "  function(d) return X.pkcs12_import(d, 'pw') end,\n"
    "  function(d) return X.pkcs12_import(d) end,\n"
    "  function(d) return crypto.load_credential(d, 'pw') end,\n"
    "  function(d) return crypto.pkcs12_import(d, '') end,\n"
    "  function(d) return crypto.rsa_from_xml(d) end,\n"
    "  function(d) return crypto.public_key_from(d:find('-----BEGIN', 1, true) and d or ('-----BEGIN' .. d)) end,\n"
    "}\n"
    "function fuzz_one(input)\n"
    "  if #input < 1 then return end\n"
    "  local f = loaders[input:byte(1) % #loaders + 1]\n"
    "  local ok, v, err = pcall(f, input:sub(2))\n"
    "  if not ok then error('loader raised: ' .. tostring(v)) end\n"
    "  if v == nil and type(err) ~= 'string' then error('nil without a message') end\n"
    "  if type(v) == 'userdata' and v.pem then local _ = v:pem() end\n"   /* what was loaded is usable */
    "  if type(v) == 'table' and v.cert then local _ = v.cert:pem(); _ = v.key:public_pem() end\n"
    "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    L = fuzz_state();
    fuzz_do(L, SETUP);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 64 * 1024) return 0;          /* the loaders' files are capped at read time */
    fuzz_call(L, "fuzz_one", data, size);
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
