/* dkim.c — DKIM signatures (RFC 6376, RFC 8301, RFC 8463) over OpenSSL: tag-lists, messages,
 * canonicalization, key records, verify and sign (module "t2t.core.dkim").
 *
 * Why our own code rather than libopendkim (docs/dkim.md, "Choices"): the verifier must take
 * its keys from t2t's own DNS (c-ares inside the scheduler) and never block; libopendkim's
 * asynchronous DNS hooks exist but its DNS and policy live in the library.  libopendkim 2.11 also
 * refuses RSAPublicKey keys (which RFC 6376 §3.6.1 names), still verifies rsa-sha1 by default,
 * and would need 40+ callbacks and its own configuration to be driven from Lua.  What DKIM needs
 * from a library is SHA-256, RSA PKCS#1 v1.5 and Ed25519: OpenSSL has them.  This file knows RFC
 * formats and nothing about Microsoft or DNS: key records come in as text from the caller.
 *
 *   dkim.taglist(s [, lenient]) -> {tag = value, [1..n] = tags in order} | nil, err
 *   dkim.message(raw) -> Message (LF or CRLF; LF-only lines become CRLF)
 *     m:signatures() -> { {field, d, s, a, c, h, i, l, t, x, error?}, ... } top to bottom
 *     m:verify(n, key [, {now, min_rsa_bits}]) -> {result, reason, bits, testing, ...}
 *     m:headers() -> { {name, value}, ... };  m:body() -> the body as stored
 *   dkim.key(txt) -> Key | nil, err       (the selector's TXT record, strings joined)
 *   signing, key generation and canonicalization helpers: core/dkim_sign.c
 *
 * Verdicts are RFC 8601 words: pass, fail (the signature or body hash does not verify),
 * permerror (anything else that can never pass: syntax, sha1, small or revoked keys, expiry).
 * C never raises between an allocation and its release: results go into C structs first and
 * become Lua values after everything is freed. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "host.h"

#include "dkim_msg.h"

#define MSG_MT   "t2t.dkim.Message"
#define KEY_MT   "t2t.dkim.Key"

/* dkim.taglist(s [, lenient]) -> {tag = value, [i] = tag} | nil, err */
static int l_taglist(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int lenient = lua_toboolean(L, 2);
    struct taglist *tl = malloc(sizeof *tl);
    if (!tl) return luaL_error(L, "not enough memory");
    const char *why = taglist_parse(s, n, tl, lenient);
    if (why) {
        free(tl);
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    struct taglist copy = *tl;           /* on the C stack: nothing to free if a push raises */
    free(tl);
    lua_createtable(L, copy.n, copy.n);
    for (int i = 0; i < copy.n; i++) {
        lua_pushlstring(L, copy.t[i].name.p, copy.t[i].name.n);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, i + 1);
        lua_pushlstring(L, copy.t[i].value.p, copy.t[i].value.n);
        lua_rawset(L, -3);
    }
    return 1;
}

static int msg_gc(lua_State *L) {
    msg_free(luaL_checkudata(L, 1, MSG_MT));
    return 0;
}

/* Copy raw into m->buf with every bare LF made CRLF.  0 on allocation failure. */
static int l_message(lua_State *L) {
    size_t n;
    const char *raw = luaL_checklstring(L, 1, &n);
    struct message *m = lua_newuserdatauv(L, sizeof *m, 0);
    memset(m, 0, sizeof *m);
    luaL_setmetatable(L, MSG_MT);
    if (!msg_init(m, raw, n)) return luaL_error(L, "not enough memory");
    return 1;
}

static struct message *check_msg(lua_State *L, int idx) {
    struct message *m = luaL_checkudata(L, idx, MSG_MT);
    if (!m->buf) luaL_argerror(L, idx, "message is closed");
    return m;
}

static void push_span(lua_State *L, struct span s) { lua_pushlstring(L, s.p, s.n); }

/* m:signatures() -> list of {field, d, s, a, c, h, i, l, t, x, error} */
static int msg_signatures(lua_State *L) {
    struct message *m = check_msg(L, 1);
    lua_createtable(L, m->nsigs, 0);
    for (int k = 0; k < m->nsigs; k++) {
        const struct sig *g = &m->sigs[k];
        lua_createtable(L, 0, 12);
        lua_pushinteger(L, (lua_Integer)g->field + 1);
        lua_setfield(L, -2, "field");
        for (int j = 0; j < 10; j++) {
            if (!g->shown[j].p) continue;
            push_span(L, g->shown[j]);
            lua_setfield(L, -2, SIG_SHOWN[j]);
        }
        if (g->error) { lua_pushstring(L, g->error); lua_setfield(L, -2, "error"); }
        lua_rawseti(L, -2, k + 1);
    }
    return 1;
}

/* m:headers() -> { {name, value}, ... } in order (values as stored, folding kept) */
static int msg_headers(lua_State *L) {
    struct message *m = check_msg(L, 1);
    lua_createtable(L, (int)m->nf, 0);
    for (size_t k = 0; k < m->nf; k++) {
        lua_createtable(L, 2, 0);
        push_span(L, field_name(m, k));
        lua_rawseti(L, -2, 1);
        push_span(L, field_value(m, k));
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    return 1;
}

/* m:from() -> the number of From fields, the first one's value (the verifier's alignment and
 * its "several From" warning, without building every header). */
static int msg_from(lua_State *L) {
    struct message *m = check_msg(L, 1);
    lua_Integer n = 0;
    size_t first = 0;
    for (size_t k = 0; k < m->nf; k++)
        if (span_ieq(field_name(m, k), "from") && n++ == 0) first = k;
    lua_pushinteger(L, n);
    if (n) push_span(L, field_value(m, first)); else lua_pushnil(L);
    return 2;
}

static int msg_body(lua_State *L) {
    struct message *m = check_msg(L, 1);
    lua_pushlstring(L, m->buf + m->body, m->len - m->body);
    return 1;
}

/* ---- keys (RFC 6376 §3.6.1, RFC 8463 §4.2) -------------------------------------------------- */

struct key {
    EVP_PKEY *pkey;                      /* NULL when closed or revoked */
    EVP_PKEY_CTX *vctx;                  /* RSA: set up once for PKCS#1 v1.5 + SHA-256 (lazy) */
    EVP_MD_CTX *ectx;                    /* Ed25519: initialized once, copied per verification */
    int ed25519, testing, strict, sha256_ok, bits;
};

static int key_gc(lua_State *L) {
    struct key *k = luaL_checkudata(L, 1, KEY_MT);
    EVP_PKEY_CTX_free(k->vctx);
    k->vctx = NULL;
    EVP_MD_CTX_free(k->ectx);
    k->ectx = NULL;
    EVP_PKEY_free(k->pkey);
    k->pkey = NULL;
    return 0;
}

/* Does the colon list v hold word (or "*" when star)? */
static int list_has(struct span v, const char *word, int star) {
    for (size_t i = 0; i <= v.n;) {
        size_t j = i;
        while (j < v.n && v.p[j] != ':') j++;
        struct span w = trim_fws(v.p + i, j - i);
        if (span_eq(w, word) || (star && span_eq(w, "*"))) return 1;
        i = j + 1;
    }
    return 0;
}

static EVP_PKEY *key_material(const unsigned char *der, long n, int ed25519) {
    if (ed25519)
        return n == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, 32) : NULL;
    const unsigned char *p = der;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, n);             /* SubjectPublicKeyInfo (App. C) */
    if (!pk || p != der + n) {
        EVP_PKEY_free(pk);
        p = der;
        pk = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, n);  /* RSAPublicKey (§3.6.1, erratum 3017) */
        if (pk && p != der + n) { EVP_PKEY_free(pk); pk = NULL; }
    }
    if (pk && !EVP_PKEY_is_a(pk, "RSA")) { EVP_PKEY_free(pk); pk = NULL; }
    return pk;
}

/* Fill k from the record's tags.  NULL or why the record is unusable. */
static const char *key_parse(struct key *k, const struct taglist *tl) {
    const struct span *v = tag_get(tl, "v"), *kk = tag_get(tl, "k"), *h = tag_get(tl, "h");
    const struct span *s = tag_get(tl, "s"), *t = tag_get(tl, "t"), *p = tag_get(tl, "p");
    if (v && (!span_eq(tl->t[0].name, "v") || !span_eq(*v, "DKIM1"))) return "v= is not DKIM1 first";
    if (kk && span_eq(*kk, "ed25519")) k->ed25519 = 1;
    else if (kk && !span_eq(*kk, "rsa")) return "unknown key type k=";
    k->sha256_ok = !h || list_has(*h, "sha256", 0);
    if (s && !list_has(*s, "email", 1)) return "the key's s= excludes email";
    k->testing = t && list_has(*t, "y", 0);
    k->strict = t && list_has(*t, "s", 0);
    if (!p) return "no p= in the key record";
    if (trim_fws(p->p, p->n).n == 0) return "the key is revoked (empty p=)";
    unsigned char der[2048];
    long n = b64_decode(p->p, p->n, der, sizeof der);
    if (n <= 0) return "p= is not base64";
    if (!(k->pkey = key_material(der, n, k->ed25519)))
        return k->ed25519 ? "p= is not a raw 32-byte Ed25519 key" : "p= is not an RSA public key";
    k->bits = EVP_PKEY_get_bits(k->pkey);
    return NULL;
}

/* dkim.key(txt) -> Key | nil, err */
static int l_key(lua_State *L) {
    size_t n;
    const char *txt = luaL_checklstring(L, 1, &n);
    struct key *k = lua_newuserdatauv(L, sizeof *k, 0);
    memset(k, 0, sizeof *k);
    luaL_setmetatable(L, KEY_MT);
    struct taglist tl;
    const char *why = taglist_parse(txt, n, &tl, 0);
    if (!why) why = key_parse(k, &tl);
    if (why) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    return 1;
}

static struct key *check_key(lua_State *L, int idx) {
    struct key *k = luaL_checkudata(L, idx, KEY_MT);
    if (!k->pkey) luaL_argerror(L, idx, "key is closed");
    return k;
}

static int key_info(lua_State *L) {
    struct key *k = check_key(L, 1);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, k->ed25519 ? "ed25519" : "rsa");
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, k->bits);
    lua_setfield(L, -2, "bits");
    lua_pushboolean(L, k->testing);
    lua_setfield(L, -2, "testing");
    lua_pushboolean(L, k->strict);
    lua_setfield(L, -2, "strict");
    return 1;
}

/* ---- verification (RFC 6376 §6.1) ------------------------------------------------------------ */

/* SHA-256 fetched once per state (an implicit fetch per call costs OpenSSL 3 more than the
 * hashing), held by a userdata that the Message methods keep as their upvalue. */
struct md_holder { EVP_MD *md; };

static int md_gc(lua_State *L) {
    struct md_holder *h = lua_touserdata(L, 1);
    EVP_MD_free(h->md);
    h->md = NULL;
    return 0;
}

/* The header hash's check: RSA PKCS#1 v1.5 over the SHA-256 digest (a context kept in the key),
 * Ed25519 over the digest itself (RFC 8463 §3).  1 verified, 0 not, -1 out of memory. */
static int crypto_verify(struct key *k, const EVP_MD *md, const unsigned char *sig, size_t siglen,
                         const unsigned char *data, size_t n) {
    unsigned char dg[32];
    int ok = 0;
    if (!EVP_Digest(data, n, dg, NULL, md, NULL)) return -1;
    if (k->ed25519) {                    /* an init fetches the algorithm: copy one made once */
        if (!k->ectx && (k->ectx = EVP_MD_CTX_new()) != NULL &&
            EVP_DigestVerifyInit(k->ectx, NULL, NULL, NULL, k->pkey) != 1) {
            EVP_MD_CTX_free(k->ectx);
            k->ectx = NULL;
        }
        EVP_MD_CTX *ctx = k->ectx ? EVP_MD_CTX_new() : NULL;
        if (!ctx) return -1;
        if (EVP_MD_CTX_copy_ex(ctx, k->ectx) == 1)
            ok = EVP_DigestVerify(ctx, sig, siglen, dg, sizeof dg) == 1;
        EVP_MD_CTX_free(ctx);
    } else {
        if (!k->vctx) {
            EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k->pkey, NULL);
            if (c && EVP_PKEY_verify_init(c) == 1 && EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) == 1 &&
                EVP_PKEY_CTX_set_signature_md(c, md) == 1) k->vctx = c;
            else EVP_PKEY_CTX_free(c);
        }
        ok = k->vctx ? EVP_PKEY_verify(k->vctx, sig, siglen, dg, sizeof dg) == 1 : -1;
    }
    ERR_clear_error();
    return ok;
}

struct vres { const char *result, *reason; unsigned long long unsigned_bytes; int has_l; };

static const char *key_fits(const struct sig *g, const struct key *k, long long now, int min_bits) {
    if ((g->alg == A_ED25519_SHA256) != k->ed25519) return "the key's k= does not match a=";
    if (!k->sha256_ok) return "the key's h= does not allow sha256";
    if (k->strict && !span_ieq_span(g->i, g->d)) return "the key has t=s but i= is a subdomain of d=";
    if (!k->ed25519 && k->bits < min_bits) return "RSA key too small (RFC 8301: at least 1024 bits)";
    if (g->has_x && (unsigned long long)now > g->x) return "signature expired (x=)";
    return NULL;
}

static void verify_body(struct message *m, const struct sig *g, const EVP_MD *md, struct vres *r) {
    const struct dbuf *cb = canonical_body(m, g->brelaxed);
    unsigned char bh[32];
    if (!cb) { r->result = "temperror"; r->reason = "out of memory"; return; }
    size_t n = cb->n;
    if (g->has_l) {
        if (g->l > n) { r->result = "permerror"; r->reason = "l= is larger than the body"; return; }
        r->unsigned_bytes = n - g->l;
        r->has_l = 1;
        n = (size_t)g->l;
    }
    if (!EVP_Digest(cb->p ? cb->p : "", n, bh, NULL, md, NULL) || memcmp(bh, g->bh, 32) != 0) {
        r->result = "fail";
        r->reason = "body hash did not verify";
    }
}

static void verify_one(struct message *m, const struct sig *g, struct key *k, const EVP_MD *md,
                       long long now, int min_bits, struct vres *r) {
    r->result = "pass";
    r->reason = NULL;
    if (g->error) { r->result = "permerror"; r->reason = g->error; return; }
    if ((r->reason = key_fits(g, k, now, min_bits))) { r->result = "permerror"; return; }
    verify_body(m, g, md, r);
    if (strcmp(r->result, "pass") != 0) return;
    struct dbuf o = {NULL, 0, 0, 1};
    const struct field *f = &m->f[g->field];
    struct dbuf sf = {NULL, 0, 0, 1};
    add_without_b(&sf, m->buf + f->off, f->len, f->name_len);
    if (add_selected(m, g->h, g->nh, g->field, g->hrelaxed, &o) && sf.ok)
        add_sig_field(&o, sf.p, sf.n, f->name_len, g->hrelaxed);
    int ok = o.ok && sf.ok ? crypto_verify(k, md, g->b, g->blen, (const unsigned char *)o.p, o.n) : -1;
    free(o.p);
    free(sf.p);
    if (ok < 0) { r->result = "temperror"; r->reason = "out of memory"; }
    else if (!ok) { r->result = "fail"; r->reason = "signature did not verify"; }
}

/* m:verify(n, key [, {now = epoch, min_rsa_bits = 1024}]) -> {result, reason, d, s, a, bits,
 * testing, unsigned_bytes} */
static int msg_verify(lua_State *L) {
    struct message *m = check_msg(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    struct key *k = check_key(L, 3);
    luaL_argcheck(L, n >= 1 && n <= m->nsigs, 2, "no such signature");
    long long now = (long long)time(NULL);
    lua_Integer min_bits = 1024;
    if (lua_istable(L, 4)) {
        lua_getfield(L, 4, "now");
        now = (long long)luaL_optinteger(L, -1, now);
        lua_getfield(L, 4, "min_rsa_bits");
        min_bits = luaL_optinteger(L, -1, 1024);
        lua_pop(L, 2);
    }
    if (min_bits < 1024) min_bits = 1024;            /* RFC 8301 §3.2: never below */
    const struct sig *g = &m->sigs[n - 1];
    struct vres r = {NULL, NULL, 0, 0};
    const struct md_holder *h = lua_touserdata(L, lua_upvalueindex(1));
    verify_one(m, g, k, h->md, now, (int)min_bits, &r);
    lua_createtable(L, 0, 8);
    lua_pushstring(L, r.result);
    lua_setfield(L, -2, "result");
    if (r.reason) { lua_pushstring(L, r.reason); lua_setfield(L, -2, "reason"); }
    lua_pushinteger(L, k->bits);
    lua_setfield(L, -2, "bits");
    lua_pushboolean(L, k->testing);
    lua_setfield(L, -2, "testing");
    if (r.has_l) { lua_pushinteger(L, (lua_Integer)r.unsigned_bytes); lua_setfield(L, -2, "unsigned_bytes"); }
    return 1;
}

int luaopen_t2t_dkim(lua_State *L) {
    static const luaL_Reg msg_methods[] = {
        {"signatures", msg_signatures}, {"verify", msg_verify}, {"headers", msg_headers},
        {"body", msg_body}, {"from", msg_from}, {NULL, NULL}};
    static const luaL_Reg key_methods[] = {{"info", key_info}, {NULL, NULL}};
    static const luaL_Reg fns[] = {
        {"taglist", l_taglist}, {"message", l_message}, {"key", l_key}, {NULL, NULL}};
    if (luaL_newmetatable(L, MSG_MT)) {
        luaL_newlibtable(L, msg_methods);
        struct md_holder *h = lua_newuserdatauv(L, sizeof *h, 0);
        h->md = NULL;
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, md_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        if (!(h->md = EVP_MD_fetch(NULL, "SHA256", NULL))) return luaL_error(L, "OpenSSL has no SHA-256");
        luaL_setfuncs(L, msg_methods, 1);  /* each method keeps the holder as its upvalue */
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, msg_gc);
        lua_setfield(L, -2, "__gc");
    }
    if (luaL_newmetatable(L, KEY_MT)) {
        luaL_newlib(L, key_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, key_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 2);
    luaL_newlib(L, fns);
    return 1;
}

