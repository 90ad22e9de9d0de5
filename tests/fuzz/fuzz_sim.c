/* fuzz_sim — the simulator's request handling without the network: the request target (path
 * and query string, decoded by core/sim_server_lua.h as the server does), headers and body
 * reach t2t.sim.handler and through it every service: Entra ID login, Graph, Exchange Online,
 * ARM, Key Vault and the control API.  Input, as text:
 *     METHOD HOST TARGET\n  (header: value\n)*  \n  body
 * The harness adds what an attacker cannot forge but a real client has — a valid token for the
 * host's service, the control key — unless the input brings its own, so the fuzzer reaches
 * the services' logic instead of stopping at 401.  Findings: a crash or sanitizer report, a
 * Lua error escaping a service (a 500), or a response the server could not send.
 * Not fuzzed here: PUT /_sim/state and POST /_sim/save (the owner's own state and files). */
#include "fuzz.h"
#include "sim_server_lua.h"

static lua_State *L;
static unsigned long runs;

static const char *SETUP =
    "local handler = require 't2t.sim.handler'\n"
    "local context = require 't2t.sim.context'\n"
    "local model = require 't2t.sim.model'\n"
    "local KEY = string.rep('f', 64)\n"
    "local sim = handler.init { users = 3, seed = 11, log_errors = false, control_key = KEY }\n"
    "local pristine = model.encode_state(sim.state)\n"
    "local st = sim.state\n"
    "local src, tgt = st.tenants[st.pair.source], st.tenants[st.pair.target]\n"
    "local function tok(t, aud, app)\n"
    "  local roles = { 'Application.ReadWrite.All', 'Directory.ReadWrite.All', 'User.ReadWrite.All',\n"
    "                  'Group.ReadWrite.All', 'AppRoleAssignment.ReadWrite.All', 'Exchange.ManageAsApp',\n"
    "                  'Organization.ReadWrite.All', 'RoleManagement.ReadWrite.Directory' }\n"
    "  return (sim.tokens:issue { tid = t.id, aud = aud, appid = app, oid = t.seeded.admin_app.sp_id,\n"
    "                             roles = roles, wids = { '62e90394-69f5-4237-9190-012177145e10' },\n"
    "                             lifetime = 10 ^ 8 })\n"
    "end\n"
    "local app = src.seeded.admin_app.app_id\n"
    "local TOKENS = { graph = tok(src, 'https://graph.microsoft.com', app),\n"
    "                 exo = tok(src, 'https://outlook.office365.com', app),\n"
    "                 arm = tok(src, 'https://management.azure.com', app),\n"
    "                 keyvault = tok(src, 'https://vault.azure.net', app) }\n"
    "local router = require 't2t.sim.router'\n"
    "local NO = { ['PUT /_sim/state'] = true, ['POST /_sim/save'] = true }\n"
    "function fuzz_handle(req)\n"
    "  fuzz_runs = (fuzz_runs or 0) + 1\n"
    "  if fuzz_runs % 2000 == 0 then sim.state = assert(model.decode_state(pristine)) end\n"
    "  if NO[req.method .. ' ' .. req.path:gsub('/+$', '')] then return { status = 204 } end\n"
    "  local h = req.headers\n"
    "  local svc = router.service(router.host_of(req), req.path)\n"
    "  if h.authorization == nil and TOKENS[svc] then h.authorization = 'Bearer ' .. TOKENS[svc] end\n"
    "  if svc == 'control' and h['x-t2t-sim-control'] == nil then h['x-t2t-sim-control'] = KEY end\n"
    "  local r = handler.handle(req)\n"
    "  sim.faults = assert(context.parse_faults(''))\n"          /* what one input sets, the next does not inherit */
    "  sim.latency = assert(context.parse_latency(nil))\n"
    "  sim.clock_offset = 0\n"
    "  if r.status == 500 then error('a service raised: ' .. tostring(r.body), 0) end\n"
    "  return r\n"
    "end\n";

/* Protected, as srv_call: the request table (push_request), fuzz_handle, the response copied
 * back into C (resp_from_lua validates it). */
struct call { const char *method, *host, *target, *body; size_t blen; struct srv_kv *kv; size_t nkv;
              struct srv_resp resp; };

static int call(lua_State *S) {
    struct call *c = lua_touserdata(S, 1);
    lua_getglobal(S, "fuzz_handle");
    push_request(S, c->method, c->target, c->kv, c->nkv, c->body, c->blen, "127.0.0.1:40000", "HTTP/1.1");
    lua_call(S, 1, 1);
    resp_from_lua(S, lua_gettop(S), &c->resp);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    L = fuzz_state();
    fuzz_do(L, SETUP);
    fuzz_cover_lua(L);
    return 0;
}

/* Split the input (copied, NUL-terminated pieces) and run it; the host goes in as Host. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 256 * 1024) return 0;
    char *buf = malloc(size + 1);
    struct srv_kv kv[64];
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    struct call c = {"GET", "graph.microsoft.com", "/", "", 0, kv, 0, {0}};
    char *line = buf, *end = buf + size, *nl = memchr(line, '\n', size);
    if (nl) *nl = '\0';
    char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (sp1 && sp2) {
        *sp1 = *sp2 = '\0';
        c.method = line, c.host = sp1 + 1, c.target = sp2 + 1;
    }
    kv[c.nkv++] = (struct srv_kv){"Host", c.host, strlen(c.host)};
    line = nl ? nl + 1 : end;
    while (line < end) {                     /* header lines up to an empty one */
        nl = memchr(line, '\n', (size_t)(end - line));
        char *eol = nl ? nl : end;
        if (eol == line) { line = eol + 1; break; }
        *eol = '\0';
        char *colon = strchr(line, ':');
        if (colon && c.nkv < 64) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ') v++;
            kv[c.nkv++] = (struct srv_kv){line, v, strlen(v)};
        }
        line = nl ? nl + 1 : end;
    }
    if (line < end) c.body = line, c.blen = (size_t)(end - line);
    lua_pushcfunction(L, call);
    lua_pushlightuserdata(L, &c);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        fprintf(stderr, "fuzz_sim: %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object)");
        abort();
    }
    resp_clear(&c.resp);
    free(buf);
    if (++runs % 64 == 0) lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
