/* Unit tests of the DKIM text and message code (core/dkim_text.h, core/dkim_msg.h) and of
 * t2t.core.dkim through a Lua state: RFC 6376 §3.4.5 canonicalization, tag-lists, b= removal,
 * the RFC 8463 Appendix A header-hash input, and both RFC appendix signatures. */
#include <openssl/evp.h>
#include "check.h"
#include "host.h"
#include "dkim_msg.h"

static char out[4096];

static const char *canon_body_str(const char *in, int relaxed) {
    struct dbuf o = {NULL, 0, 0, 1};
    canon_body(&o, in, strlen(in), relaxed);
    size_t n = o.n < sizeof out - 1 ? o.n : sizeof out - 1;
    if (o.p) memcpy(out, o.p, n);
    out[n] = 0;
    free(o.p);
    return out;
}

static const char *canon_hdr_str(const char *f) {
    struct dbuf o = {NULL, 0, 0, 1};
    canon_header_relaxed(&o, f, strlen(f), (size_t)(strchr(f, ':') - f));
    size_t n = o.n < sizeof out - 1 ? o.n : sizeof out - 1;
    memcpy(out, o.p, n);
    out[n] = 0;
    free(o.p);
    return out;
}

/* RFC 6376 §3.4.5: "A: X", "B : Y\t\r\n\tZ  ", body " C \r\nD \t E\r\n\r\n\r\n". */
static void rfc6376_canonicalization_examples(void) {
    CHECK_STR(canon_hdr_str("A: X"), "a:X");
    CHECK_STR(canon_hdr_str("B : Y\t\r\n\tZ  "), "b:Y Z");
    CHECK_STR(canon_body_str(" C \r\nD \t E\r\n\r\n\r\n", 1), " C\r\nD E\r\n");
    CHECK_STR(canon_body_str(" C \r\nD \t E\r\n\r\n\r\n", 0), " C \r\nD \t E\r\n");
}

static void empty_and_unterminated_bodies(void) {
    CHECK_STR(canon_body_str("", 0), "\r\n");            /* simple: empty body is one CRLF */
    CHECK_STR(canon_body_str("", 1), "");                /* relaxed: stays empty */
    CHECK_STR(canon_body_str("\r\n\r\n", 0), "\r\n");
    CHECK_STR(canon_body_str(" \t \r\n", 1), "");        /* only WSP: an empty line */
    CHECK_STR(canon_body_str("x", 0), "x\r\n");
    CHECK_STR(canon_body_str("x  y \t", 1), "x y \r\n");   /* unterminated: as dkimpy, OpenDKIM */
    CHECK_STR(canon_body_str("x  y \t\r\n", 1), "x y\r\n");
    CHECK_STR(canon_body_str("a\r\n  ", 1), "a\r\n \r\n");
    CHECK_STR(canon_body_str("a\rb\r\n", 0), "a\rb\r\n"); /* a lone CR is data */
}

static void taglists(void) {
    struct taglist tl;
    CHECK(taglist_parse("v=1; a=rsa-sha256;", 18, &tl, 0) == NULL);
    CHECK(tl.n == 2);
    CHECK(span_eq(tl.t[1].value, "rsa-sha256"));
    const char *s = " v = DKIM1 ;\r\n\tp= MIG fMA ";
    CHECK(taglist_parse(s, strlen(s), &tl, 0) == NULL);
    CHECK(span_eq(tl.t[0].name, "v") && span_eq(tl.t[0].value, "DKIM1"));
    CHECK(tl.t[1].value.n == 7);                         /* inner FWS kept, ends trimmed */
    CHECK_STR(taglist_parse("a=1; a=2", 8, &tl, 0), "duplicate tag");
    CHECK_STR(taglist_parse("a=1;;b=2", 8, &tl, 0), "empty tag-spec");
    CHECK(taglist_parse("a=1;;b=2", 8, &tl, 1) == NULL);
    CHECK_STR(taglist_parse("1a=1", 4, &tl, 0), "a tag name must start with a letter");
    CHECK_STR(taglist_parse("a", 1, &tl, 0), "a tag without '='");
    CHECK_STR(taglist_parse("a=\x01", 3, &tl, 0), "bad character in a tag value");
    CHECK(taglist_parse("", 0, &tl, 0) == NULL && tl.n == 0);
}

static void base64_with_whitespace(void) {
    unsigned char b[16];
    CHECK(b64_decode("aGVs\r\n bG8=", 11, b, sizeof b) == 5 && memcmp(b, "hello", 5) == 0);
    CHECK(b64_decode("aGVs*G8=", 8, b, sizeof b) == -1);
    CHECK(b64_decode("aG=Vs", 5, b, sizeof b) == -1);    /* data after padding */
}

static const char rfc8463[] =
    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
    " subject : date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
    " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "\r\n"
    "Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n";

/* The header-hash input and its SHA-256, as dkim.md §3.7 recomputed them. */
static void rfc8463_header_hash_input(void) {
    struct message m;
    memset(&m, 0, sizeof m);
    CHECK(msg_init(&m, rfc8463, strlen(rfc8463)));
    CHECK(m.nsigs == 1 && m.sigs[0].error == NULL && m.sigs[0].nh == 8);
    struct dbuf o = {NULL, 0, 0, 1}, sf = {NULL, 0, 0, 1};
    const struct sig *g = &m.sigs[0];
    const struct field *f = &m.f[g->field];
    CHECK(add_selected(&m, g->h, g->nh, g->field, 1, &o));
    add_without_b(&sf, m.buf + f->off, f->len, f->name_len);
    add_sig_field(&o, sf.p, sf.n, f->name_len, 1);
    db_addc(&o, 0);
    CHECK_STR(o.p,
        "from:Joe SixPack <joe@football.example.com>\r\n"
        "to:Suzie Q <suzie@shopping.example.net>\r\n"
        "subject:Is dinner ready?\r\n"
        "date:Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
        "message-id:<20030712040037.46341.5F8J@football.example.com>\r\n"
        "dkim-signature:v=1; a=ed25519-sha256; c=relaxed/relaxed; d=football.example.com; "
        "i=@football.example.com; q=dns/txt; s=brisbane; t=1528637909; h=from : to : subject : "
        "date : message-id : from : subject : date; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=");
    unsigned char md[32];
    char hex[65];
    EVP_Digest(o.p, o.n - 1, md, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    CHECK_STR(hex, "48ce9a2c710ece1710ff156996b836a7f45470e43efe5643074d6e1690ed62e7");
    const struct dbuf *cb = canonical_body(&m, 1);
    CHECK(cb && cb->n == 54 && memcmp(cb->p, "Hi.\r\n\r\nWe lost the game. Are you hungry yet?\r\n\r\nJoe.\r\n", 54) == 0);
    free(o.p);
    free(sf.p);
    msg_free(&m);
}

static void signature_validation(void) {
    static const struct { const char *tags, *why; } cases[] = {
        {"v=1; a=rsa-sha1; b=AA==; bh=AA==; d=x.org; h=from; s=s", "rsa-sha1 must not be used (RFC 8301 §3.1)"},
        {"v=2; a=rsa-sha256; b=AA==; bh=AA==; d=x.org; h=from; s=s", "v= is not 1"},
        {"v=1; a=rsa-sha256; b=AA==; d=x.org; h=from; s=s", "a required tag (v a b bh d h s) is missing"},
        {"v=1; a=rsa-sha256; b=AA==; bh=AA==; d=x.org; h=to:subject; s=s", "h= does not sign From (RFC 6376 §5.4)"},
        {"v=1; a=rsa-sha256; b=AA==; bh=AA==; d=legitimate.com(.attacker.com; h=from; s=s", "d= is not a domain name"},
        {"v=1; a=rsa-sha256; b=AA==; bh=AA==; d=x.org; i=a@y.org; h=from; s=s", "i= is not d= or a subdomain of it"},
        {"v=1; a=rsa-sha256; b=AA==; bh=AA==; d=x.org; h=from; s=s; t=5; x=4", "x= is not after t="},
        {"v=1; a=rsa-sha256; b=AA==; bh=AA==; d=x.org; h=from; s=s; q=http", "no supported query method in q="},
        {"v=1; a=rsa-sha256; b=AA==; bh=AA==; d=x.org; h=from; s=s", "bh= is not a base64 SHA-256"},
        {"v=1; a=rsa-sha256; c=fancy; b=AA==; bh=AA==; d=x.org; h=from; s=s", "unknown header canonicalization"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct sig *g = calloc(1, sizeof *g);
        struct span v = {cases[i].tags, strlen(cases[i].tags)};
        CHECK_STR(sig_parse(g, v), cases[i].why);
        free(g);
    }
}

/* b= removal deletes only the b tag's value, never bh=, and keeps what follows. */
static void b_removal(void) {
    const char *f = "DKIM-Signature: bh=abc; b= x\r\n y ; d=z";
    struct dbuf o = {NULL, 0, 0, 1};
    add_without_b(&o, f, strlen(f), 14);
    db_addc(&o, 0);
    CHECK_STR(o.p, "DKIM-Signature: bh=abc; b= ; d=z");
    free(o.p);
}

static const char *lua_verify =
    "local D = require 't2t.core.dkim'\n"
    "local raw, key, now = ...\n"
    "local m = D.message(raw)\n"
    "local out = {}\n"
    "for i, s in ipairs(m:signatures()) do\n"
    "  local k, e = D.key(key[s.s])\n"
    "  out[#out + 1] = k and m:verify(i, k, {now = now}).result or ('nokey ' .. e)\n"
    "end\n"
    "return table.concat(out, ' ')\n";

static const char *run_verify(lua_State *L, const char *raw, const char *sel1, const char *key1,
                              const char *sel2, const char *key2, long long now) {
    if (luaL_loadstring(L, lua_verify) != LUA_OK) return lua_tostring(L, -1);
    lua_pushstring(L, raw);
    lua_newtable(L);
    lua_pushstring(L, key1); lua_setfield(L, -2, sel1);
    if (sel2) { lua_pushstring(L, key2); lua_setfield(L, -2, sel2); }
    lua_pushinteger(L, now);
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) return lua_tostring(L, -1);
    return lua_tostring(L, -1);
}

static void rfc8463_appendix_a_verifies(void) {
    lua_State *L = luaL_newstate();
    host_openlibs(L);
    const char *ed = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    CHECK_STR(run_verify(L, rfc8463, "brisbane", ed, NULL, NULL, 1528637909), "pass");
    char *bad = strdup(rfc8463);
    char *p = strstr(bad, "dinner");
    p[0] = 'D';                                          /* a signed header changed */
    CHECK_STR(run_verify(L, bad, "brisbane", ed, NULL, NULL, 1528637909), "fail");
    memcpy(strstr(bad, "Joe.\r\n"), "Jim.", 4);         /* and the body */
    CHECK_STR(run_verify(L, bad, "brisbane", ed, NULL, NULL, 1528637909), "fail");
    free(bad);
    CHECK_STR(run_verify(L, rfc8463, "brisbane", "v=DKIM1; k=ed25519; p=", NULL, NULL, 0),
              "nokey the key is revoked (empty p=)");
    lua_close(L);
}

int main(void) {
    RUN(rfc6376_canonicalization_examples);
    RUN(empty_and_unterminated_bodies);
    RUN(taglists);
    RUN(base64_with_whitespace);
    RUN(rfc8463_header_hash_input);
    RUN(signature_validation);
    RUN(b_removal);
    RUN(rfc8463_appendix_a_verifies);
    return CHECK_DONE();
}
