/* dkim_sign.c — DKIM signing and keys (module "t2t.core.dkim_sign"; t2t.dkim re-exports it):
 * RFC 6376 §5 with rsa-sha256 (RFC 8301) or ed25519-sha256 (RFC 8463), over OpenSSL.
 *
 *   sign(raw, {domain, selector, key = PEM, algorithm, canon = "relaxed/relaxed", headers =
 *        "from:to:...", oversign, body_length = true | n, time, expire, identity})
 *     -> "DKIM-Signature: ...\r\n" (folded; prepend it to the message)
 *   generate_key("rsa", bits | "ed25519") -> private PEM (PKCS#8), p= value for the record
 *   canon_body(body, "simple"|"relaxed"), canon_header("Name: value", mode)   (RFC 6376 §3.4)
 *
 * What it allocates lives in a "scratch" userdata whose __gc frees it, so an error raised
 * half-way leaks nothing. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "host.h"
#include "dkim_msg.h"


/* What sign() allocates, owned by a userdata so a Lua error never leaks it. */
struct scratch { struct dbuf a, b; EVP_PKEY *pk; struct sig *g; struct message *m; };

static int scratch_gc(lua_State *L) {
    struct scratch *s = lua_touserdata(L, 1);
    free(s->a.p);
    free(s->b.p);
    free(s->g);
    if (s->m) msg_free(s->m);
    free(s->m);
    EVP_PKEY_free(s->pk);
    memset(s, 0, sizeof *s);
    return 0;
}

static struct scratch *new_scratch(lua_State *L) {
    struct scratch *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    s->a.ok = s->b.ok = 1;
    if (luaL_newmetatable(L, "t2t.dkim.Scratch")) {
        lua_pushcfunction(L, scratch_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return s;
}

static const char *opt_string(lua_State *L, int t, const char *k, const char *def) {
    lua_getfield(L, t, k);
    const char *v = luaL_optstring(L, -1, def);
    lua_pop(L, 1);                       /* the string stays reachable: opts holds it */
    return v;
}

/* Append "tag=value;" with folding before it when the line would pass 78 columns. */
static void fold_add(struct dbuf *o, size_t *col, const char *text, size_t n) {
    if (*col + n + 1 > 78) { db_adds(o, "\r\n\t"); *col = 8; }
    else if (*col) { db_addc(o, ' '); (*col)++; }
    db_add(o, text, n);
    *col += n;
}

/* h= for the message: each listed name as often as it occurs (+1 when oversigning). */
static void build_h(const struct message *m, const char *names, int oversign, struct dbuf *h) {
    for (const char *p = names; *p;) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        struct span nm = trim_fws(p, len);
        size_t count = 0;
        for (size_t j = 0; j < m->nf && nm.n; j++) if (span_ieq_span(field_name(m, j), nm)) count++;
        for (size_t c = 0; c < count + (oversign && nm.n ? 1 : 0); c++) {
            if (h->n) db_addc(h, ':');
            for (size_t i = 0; i < nm.n; i++) db_addc(h, (char)lc((unsigned char)nm.p[i]));
        }
        p += len + (e ? 1 : 0);
    }
}

/* Split the colon list into g->h (spans into h). */
static void spans_of(const struct dbuf *h, struct sig *g) {
    g->nh = 0;
    for (size_t i = 0; i < h->n && g->nh < HNAMES_MAX;) {
        size_t j = i;
        while (j < h->n && h->p[j] != ':') j++;
        g->h[g->nh].p = h->p + i;
        g->h[g->nh++].n = j - i;
        i = j + 1;
    }
}

static int sign_data(EVP_PKEY *pk, int ed25519, const unsigned char *data, size_t n,
                     unsigned char *sig, size_t *siglen) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char dg[32];
    int ok = 0;
    if (!ctx) return 0;
    if (ed25519) {
        ok = EVP_Digest(data, n, dg, NULL, EVP_sha256(), NULL) &&
             EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk) == 1 &&
             EVP_DigestSign(ctx, sig, siglen, dg, sizeof dg) == 1;
    } else {
        ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pk) == 1 &&
             EVP_DigestSign(ctx, sig, siglen, data, n) == 1;
    }
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

static void b64_append(struct dbuf *o, const unsigned char *p, size_t n) {
    size_t need = 4 * ((n + 2) / 3) + 1;
    char *tmp = malloc(need);
    if (!tmp) { o->ok = 0; return; }
    int len = EVP_EncodeBlock((unsigned char *)tmp, p, (int)n);
    db_add(o, tmp, (size_t)len);
    free(tmp);
}

struct signopts {
    const char *d, *s, *alg, *canon, *headers, *identity;
    int oversign, hrelaxed, brelaxed, ed25519;
    lua_Integer t, x, l;                 /* -1: absent; l = -2: the whole canonical body */
};

static void sign_opts(lua_State *L, struct signopts *o) {
    luaL_checktype(L, 2, LUA_TTABLE);
    o->d = opt_string(L, 2, "domain", NULL);
    o->s = opt_string(L, 2, "selector", NULL);
    luaL_argcheck(L, o->d && o->s, 2, "domain and selector are required");
    o->alg = opt_string(L, 2, "algorithm", NULL);
    o->canon = opt_string(L, 2, "canon", "relaxed/relaxed");
    o->identity = opt_string(L, 2, "identity", NULL);
    o->headers = opt_string(L, 2, "headers",
        "from:to:cc:subject:date:message-id:mime-version:content-type:reply-to:in-reply-to:references");
    lua_getfield(L, 2, "oversign");
    o->oversign = lua_toboolean(L, -1);
    lua_getfield(L, 2, "time");
    o->t = luaL_optinteger(L, -1, -1);
    lua_getfield(L, 2, "expire");
    o->x = luaL_optinteger(L, -1, -1);
    lua_getfield(L, 2, "body_length");
    o->l = lua_isboolean(L, -1) ? (lua_toboolean(L, -1) ? -2 : -1) : luaL_optinteger(L, -1, -1);
    lua_pop(L, 4);
    struct span c = {o->canon, strlen(o->canon)};
    struct sig tmp;
    luaL_argcheck(L, sig_canon(&tmp, &c) == NULL, 2, "canon must be simple|relaxed[/simple|relaxed]");
    o->hrelaxed = tmp.hrelaxed;
    o->brelaxed = tmp.brelaxed;
}

static EVP_PKEY *load_private(lua_State *L, struct scratch *sc) {
    lua_getfield(L, 2, "key");
    size_t n;
    const char *pem = luaL_checklstring(L, -1, &n);
    BIO *bio = BIO_new_mem_buf(pem, (int)n);
    sc->pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"") : NULL;
    BIO_free(bio);
    ERR_clear_error();
    lua_pop(L, 1);
    if (!sc->pk || !(EVP_PKEY_is_a(sc->pk, "RSA") || EVP_PKEY_is_a(sc->pk, "ED25519")))
        luaL_argerror(L, 2, "key must be an RSA or Ed25519 private key in PEM");
    return sc->pk;
}

/* The field up to "b=" (folded), in sc->a; h= names in sc->b. */
static void sign_field(struct message *m, const struct signopts *o, struct scratch *sc,
                       const unsigned char bh[32]) {
    struct dbuf *f = &sc->a;
    char tmp[128];
    size_t col = 0;
    db_adds(f, "DKIM-Signature: v=1;");
    col = 21;
    snprintf(tmp, sizeof tmp, "a=%s;", o->ed25519 ? "ed25519-sha256" : "rsa-sha256");
    fold_add(f, &col, tmp, strlen(tmp));
    snprintf(tmp, sizeof tmp, "c=%s/%s;", o->hrelaxed ? "relaxed" : "simple", o->brelaxed ? "relaxed" : "simple");
    fold_add(f, &col, tmp, strlen(tmp));
    const char *kv[][2] = {{"d", o->d}, {"s", o->s}, {"i", o->identity}};
    for (int i = 0; i < 3; i++) {
        if (!kv[i][1]) continue;
        struct dbuf t = {NULL, 0, 0, 1};
        db_adds(&t, kv[i][0]); db_addc(&t, '='); db_adds(&t, kv[i][1]); db_addc(&t, ';');
        if (t.ok) fold_add(f, &col, t.p, t.n); else f->ok = 0;
        free(t.p);
    }
    const lua_Integer nums[] = {o->t, o->x, o->l};
    const char *const names[] = {"t", "x", "l"};
    for (int i = 0; i < 3; i++) {
        if (nums[i] < 0) continue;
        snprintf(tmp, sizeof tmp, "%s=%lld;", names[i], (long long)nums[i]);
        fold_add(f, &col, tmp, strlen(tmp));
    }
    build_h(m, o->headers, o->oversign, &sc->b);
    for (size_t i = 0; i < sc->b.n;) {                  /* h=, folded at colons */
        size_t j = i;
        while (j < sc->b.n && sc->b.p[j] != ':') j++;
        struct dbuf t = {NULL, 0, 0, 1};
        if (i == 0) db_adds(&t, "h=");
        db_add(&t, sc->b.p + i, j - i);
        db_adds(&t, j < sc->b.n ? ":" : ";");
        if (t.ok) {
            if (i && col + t.n > 78) { db_adds(f, "\r\n\t"); col = 8; }
            else if (i == 0) { db_addc(f, ' '); col++; }
            db_add(f, t.p, t.n);
            col += t.n;
        } else f->ok = 0;
        free(t.p);
        i = j + 1;
    }
    char b64[64];
    EVP_EncodeBlock((unsigned char *)b64, bh, 32);
    snprintf(tmp, sizeof tmp, "bh=%s;", b64);
    fold_add(f, &col, tmp, strlen(tmp));
    fold_add(f, &col, "b=", 2);
}

/* dkim.sign(raw, opts) -> the DKIM-Signature field, folded, ending in CRLF (module header). */
static int l_sign(lua_State *L) {
    luaL_checkstring(L, 1);
    struct signopts o;
    sign_opts(L, &o);
    size_t rawn;
    const char *raw = lua_tolstring(L, 1, &rawn);
    struct scratch *sc = new_scratch(L);
    if (!(sc->m = calloc(1, sizeof *sc->m)) || !msg_init(sc->m, raw, rawn))
        return luaL_error(L, "not enough memory");
    struct message *m = sc->m;
    EVP_PKEY *pk = load_private(L, sc);
    o.ed25519 = EVP_PKEY_is_a(pk, "ED25519");
    if (o.alg && strcmp(o.alg, o.ed25519 ? "ed25519-sha256" : "rsa-sha256") != 0)
        return luaL_argerror(L, 2, "algorithm does not match the key");
    int from = 0;
    for (size_t j = 0; j < m->nf; j++) if (span_ieq(field_name(m, j), "from")) from = 1;
    if (!from) return luaL_argerror(L, 1, "the message has no From field to sign");
    const struct dbuf *cb = canonical_body(m, o.brelaxed);
    if (!cb) return luaL_error(L, "not enough memory");
    if (o.l == -2) o.l = (lua_Integer)cb->n;
    luaL_argcheck(L, o.l < 0 || (size_t)o.l <= cb->n, 2, "body_length is larger than the body");
    unsigned char bh[32], sig[1024];
    EVP_Digest(cb->p ? cb->p : "", o.l >= 0 ? (size_t)o.l : cb->n, bh, NULL, EVP_sha256(), NULL);
    sign_field(m, &o, sc, bh);
    if (!(sc->g = calloc(1, sizeof *sc->g))) return luaL_error(L, "not enough memory");
    spans_of(&sc->b, sc->g);
    struct dbuf in = {NULL, 0, 0, 1};
    size_t siglen = sizeof sig;
    int ok = sc->a.ok && sc->b.ok && add_selected(m, sc->g->h, sc->g->nh, SIZE_MAX, o.hrelaxed, &in);
    if (ok) add_sig_field(&in, sc->a.p, sc->a.n, 14, o.hrelaxed);
    ok = ok && in.ok && EVP_PKEY_get_size(pk) <= (int)sizeof sig &&
         sign_data(pk, o.ed25519, (const unsigned char *)in.p, in.n, sig, &siglen);
    free(in.p);
    if (!ok) return luaL_error(L, "dkim.sign: signing failed");
    size_t start = sc->a.n, col = 0;
    while (col < start && sc->a.p[start - col - 1] != '\n') col++;
    b64_append(&sc->a, sig, siglen);
    luaL_Buffer b;                       /* the b= value folded to 76 columns */
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, sc->a.p, start);
    size_t first = col < 60 ? 76 - col : 16;
    for (size_t i = start, w = first; i < sc->a.n; i += w, w = 68) {
        if (i > start) luaL_addstring(&b, "\r\n\t ");
        luaL_addlstring(&b, sc->a.p + i, sc->a.n - i < w ? sc->a.n - i : w);
    }
    luaL_addstring(&b, "\r\n");
    luaL_pushresult(&b);
    return 1;
}

/* dkim.generate_key("rsa", bits | "ed25519") -> private PEM (PKCS#8), p= value (base64). */
static int l_generate_key(lua_State *L) {
    static const char *const kinds[] = {"rsa", "ed25519", NULL};
    int ed = luaL_checkoption(L, 1, NULL, kinds);
    lua_Integer bits = luaL_optinteger(L, 2, 2048);
    luaL_argcheck(L, ed || (bits >= 512 && bits <= 4096 && bits % 256 == 0), 2,
                  "RSA bits must be 512..4096 (a multiple of 256)");
    struct scratch *sc = new_scratch(L);
    sc->pk = ed ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519") : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    if (!sc->pk) return luaL_error(L, "key generation failed");
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio && PEM_write_bio_PKCS8PrivateKey(bio, sc->pk, NULL, NULL, 0, NULL, NULL)) {
        char *p;
        long n = BIO_get_mem_data(bio, &p);
        db_add(&sc->a, p, (size_t)n);
    } else sc->a.ok = 0;
    BIO_free(bio);
    unsigned char raw[32], *der = NULL;
    size_t rl = sizeof raw;
    int dl = 0;
    if (ed) { if (EVP_PKEY_get_raw_public_key(sc->pk, raw, &rl) == 1) b64_append(&sc->b, raw, rl); else sc->b.ok = 0; }
    else if ((dl = i2d_PUBKEY(sc->pk, &der)) > 0) b64_append(&sc->b, der, (size_t)dl);
    else sc->b.ok = 0;
    OPENSSL_free(der);
    ERR_clear_error();
    if (!sc->a.ok || !sc->b.ok) return luaL_error(L, "key generation failed");
    lua_pushlstring(L, sc->a.p, sc->a.n);
    lua_pushlstring(L, sc->b.p, sc->b.n);
    return 2;
}

/* dkim.canon_body(body, "simple"|"relaxed") -> canonical body (input in CRLF form) */
static int l_canon_body(lua_State *L) {
    size_t n;
    const char *b = luaL_checklstring(L, 1, &n);
    static const char *const modes[] = {"simple", "relaxed", NULL};
    int relaxed = luaL_checkoption(L, 2, NULL, modes);
    struct scratch *sc = new_scratch(L);
    canon_body(&sc->a, b, n, relaxed);
    if (!sc->a.ok) return luaL_error(L, "not enough memory");
    lua_pushlstring(L, sc->a.p ? sc->a.p : "", sc->a.n);
    return 1;
}

/* dkim.canon_header("Name: value", mode) -> canonical field without CRLF */
static int l_canon_header(lua_State *L) {
    size_t n;
    const char *f = luaL_checklstring(L, 1, &n);
    static const char *const modes[] = {"simple", "relaxed", NULL};
    int relaxed = luaL_checkoption(L, 2, NULL, modes);
    const char *colon = memchr(f, ':', n);
    luaL_argcheck(L, colon != NULL, 1, "a header field needs a colon");
    struct scratch *sc = new_scratch(L);
    add_sig_field(&sc->a, f, n, (size_t)(colon - f), relaxed);
    if (!sc->a.ok) return luaL_error(L, "not enough memory");
    lua_pushlstring(L, sc->a.p ? sc->a.p : "", sc->a.n);
    return 1;
}


int luaopen_t2t_dkim_sign(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"sign", l_sign}, {"generate_key", l_generate_key}, {"canon_body", l_canon_body},
        {"canon_header", l_canon_header}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
