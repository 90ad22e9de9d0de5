/* crypto_priv.h — shared between core/crypto.c ("t2t.core.crypto") and core/x509.c
 * ("t2t.core.x509"): the Key userdata, a scope guard for OpenSSL temporaries, error reporting.
 *
 * Everything here is static inline: only luaopen_t2t_* are exported (docs/hacking.md). */
#ifndef T2T_CRYPTO_PRIV_H
#define T2T_CRYPTO_PRIV_H

#include <string.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include "host.h"

#define T2T_KEY_MT   "t2t.crypto.Key"
#define T2T_CERT_MT  "t2t.crypto.Cert"
#define T2T_SCOPE_MT "t2t.crypto.Scope"

/* A key: RSA or Ed25519.  pkey == NULL means closed.  priv says whether the private half is
 * held (set by whoever fills the key, so no provider-specific probing is needed). */
typedef struct {
    EVP_PKEY *pkey;
    int priv;
} t2t_key;

/* Close a key: free it (OpenSSL clears private BIGNUMs/raw keys on free).  Idempotent. */
static inline void t2t_key_close(t2t_key *k) {
    if (k && k->pkey) {
        EVP_PKEY_free(k->pkey);
        k->pkey = NULL;
    }
    if (k) k->priv = 0;
}

/* Push a new, closed key userdata.  The metatable must exist: x509.c requires the crypto
 * module (luaL_requiref) in its luaopen before it can create keys. */
/* The key types t2t signs and verifies with; load_key and pkcs12_import take no others. */
static inline int t2t_key_supported(const EVP_PKEY *p) {
    return EVP_PKEY_is_a(p, "RSA") || EVP_PKEY_is_a(p, "ED25519");
}

static inline t2t_key *t2t_key_new(lua_State *L) {
    t2t_key *k = lua_newuserdatauv(L, sizeof *k, 0);
    k->pkey = NULL;
    k->priv = 0;
    luaL_setmetatable(L, T2T_KEY_MT);
    return k;
}

/* The open key at index i, or raise. */
static inline t2t_key *t2t_key_check(lua_State *L, int i) {
    t2t_key *k = luaL_checkudata(L, i, T2T_KEY_MT);
    if (k->pkey == NULL) luaL_argerror(L, i, "key is closed");
    return k;
}

/* Scope guard: OpenSSL temporaries registered here are freed by scope_close, or by __gc if a
 * Lua error unwinds first — so no C resource is ever leaked by a longjmp. */
#define T2T_SCOPE_MAX 16
typedef void (*t2t_freefn)(void *);
typedef struct {
    int n;
    void *p[T2T_SCOPE_MAX];
    t2t_freefn f[T2T_SCOPE_MAX];
} t2t_scope;

static inline void t2t_scope_close(t2t_scope *s) {
    while (s && s->n > 0) {
        s->n--;
        s->f[s->n](s->p[s->n]);
        s->p[s->n] = NULL;
    }
}

static inline int t2t_scope_gc(lua_State *L) {
    t2t_scope_close(lua_touserdata(L, 1));
    return 0;
}

/* Push a new scope (one slot on the stack). */
static inline t2t_scope *t2t_scope_new(lua_State *L) {
    t2t_scope *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->n = 0;
    if (luaL_newmetatable(L, T2T_SCOPE_MT)) {
        lua_pushcfunction(L, t2t_scope_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return s;
}

/* Register p (may be NULL: then nothing happens).  Returns p, or NULL (p freed) if full. */
static inline void *t2t_scope_add(t2t_scope *s, void *p, t2t_freefn f) {
    if (p == NULL) return NULL;
    if (s->n >= T2T_SCOPE_MAX) {
        f(p);
        return NULL;
    }
    s->p[s->n] = p;
    s->f[s->n] = f;
    s->n++;
    return p;
}

/* Typed free functions for the scope (no casts of function pointers). */
static inline void t2t_free_bio(void *p) { BIO_free_all(p); }
static inline void t2t_free_pkey(void *p) { EVP_PKEY_free(p); }
static inline void t2t_free_pkey_ctx(void *p) { EVP_PKEY_CTX_free(p); }
static inline void t2t_free_md_ctx(void *p) { EVP_MD_CTX_free(p); }

/* The reason of the most recent OpenSSL error (never key material), then clear the queue. */
static inline const char *t2t_ossl_reason(void) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown OpenSSL error";
}

/* Return nil, "what: reason" (call with every C resource already released). */
static inline int t2t_fail(lua_State *L, const char *what) {
    const char *r = t2t_ossl_reason();
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, r);
    return 2;
}

/* Push the contents of a memory BIO as a string. */
static inline void t2t_push_bio(lua_State *L, BIO *b) {
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    lua_pushlstring(L, data ? data : "", n > 0 ? (size_t)n : 0);
}

/* PEM passphrase callback: copies the passphrase given as u (a NUL-terminated C string), or
 * refuses (returns 0) when there is none — never prompts on the terminal.  No Lua in here. */
static inline int t2t_pass_cb(char *buf, int size, int rwflag, void *u) {
    (void)rwflag;
    if (u == NULL || size <= 0) return 0;
    size_t n = strlen(u);
    if (n > (size_t)size) return 0;
    memcpy(buf, u, n);
    return (int)n;
}

#endif
