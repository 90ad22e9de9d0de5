/* crypto.c — hashes, HMAC, encodings, randomness and keys over OpenSSL 3 (EVP only).
 * Module "t2t.core.crypto"; certificates and PKCS#12 are in x509.c ("t2t.core.x509").
 *
 * Keys are "t2t.crypto.Key" userdata (see crypto_priv.h): created closed, filled last, closed
 * by one idempotent never-raising function serving __gc, __close and key:close().  OpenSSL
 * temporaries go into a scope guard so a Lua error (even out of memory) never leaks them.
 * Buffers that held private material are cleansed.  Error messages carry OpenSSL's reason
 * text only, never key bytes or passphrases. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "crypto_priv.h"

/* ---- encodings ------------------------------------------------------------------------ */

static const char B64STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Push base64 (padded) or base64url (unpadded) of p[0..n). */
static void push_b64(lua_State *L, const unsigned char *p, size_t n, int url) {
    const char *tab = url ? B64URL : B64STD;
    luaL_Buffer b;
    char *o = luaL_buffinitsize(L, &b, (n + 2) / 3 * 4);
    size_t j = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        o[j++] = tab[v >> 18 & 63]; o[j++] = tab[v >> 12 & 63];
        o[j++] = tab[v >> 6 & 63];  o[j++] = tab[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
        o[j++] = tab[v >> 18 & 63];
        o[j++] = tab[v >> 12 & 63];
        if (i + 1 < n) o[j++] = tab[v >> 6 & 63];
        else if (!url) o[j++] = '=';
        if (!url) o[j++] = '=';
    }
    luaL_pushresultsize(&b, j);
}

static int b64val(unsigned char c, int url) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == (url ? '-' : '+')) return 62;
    if (c == (url ? '_' : '/')) return 63;
    return -1;
}

/* Decode s[0..n) into out (room for n/4*3+3 bytes).  Standard base64 skips whitespace;
 * padding is optional in both alphabets.  Returns the length, or -1 if malformed. */
static long b64_decode(const char *s, size_t n, unsigned char *out, int url) {
    unsigned long acc = 0;
    int bits = 0, pad = 0;
    size_t o = 0, syms = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '=') { pad++; continue; }
        if (!url && (c == ' ' || c == '\n' || c == '\r' || c == '\t')) continue;
        int v = b64val(c, url);
        if (v < 0 || pad) return -1;
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        syms++;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    if (syms % 4 == 1 || pad > 2 || (pad && (syms + pad) % 4 != 0)) return -1;
    return (long)o;
}

static int decode_b64(lua_State *L, int url) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    unsigned char *o = (unsigned char *)luaL_buffinitsize(L, &b, n / 4 * 3 + 3);
    long len = b64_decode(s, n, o, url);
    if (len < 0) {
        lua_pushnil(L);
        lua_pushstring(L, url ? "invalid base64url" : "invalid base64");
        return 2;
    }
    luaL_pushresultsize(&b, (size_t)len);
    return 1;
}

static int l_base64_encode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    push_b64(L, (const unsigned char *)s, n, 0);
    return 1;
}
static int l_base64url_encode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    push_b64(L, (const unsigned char *)s, n, 1);
    return 1;
}
static int l_base64_decode(lua_State *L) { return decode_b64(L, 0); }
static int l_base64url_decode(lua_State *L) { return decode_b64(L, 1); }

static void push_hex(lua_State *L, const unsigned char *p, size_t n, int upper) {
    const char *dig = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    luaL_Buffer b;
    char *o = luaL_buffinitsize(L, &b, n * 2);
    for (size_t i = 0; i < n; i++) {
        o[2 * i] = dig[p[i] >> 4];
        o[2 * i + 1] = dig[p[i] & 15];
    }
    luaL_pushresultsize(&b, n * 2);
}

/* hex_encode(s [, upper]) -> lower-case (or upper-case) hex */
static int l_hex_encode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    push_hex(L, (const unsigned char *)s, n, lua_toboolean(L, 2));
    return 1;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* hex_decode(s) -> bytes | nil, err.  Accepts either case and ':' separators (fingerprints). */
static int l_hex_decode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    char *o = luaL_buffinitsize(L, &b, n / 2 + 1);
    size_t j = 0;
    int hi = -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ':' && hi < 0) continue;
        int v = hexval((unsigned char)s[i]);
        if (v < 0) goto bad;
        if (hi < 0) hi = v;
        else { o[j++] = (char)(hi << 4 | v); hi = -1; }
    }
    if (hi >= 0) goto bad;
    luaL_pushresultsize(&b, j);
    return 1;
bad:
    lua_pushnil(L);
    lua_pushliteral(L, "invalid hex");
    return 2;
}

/* ---- digests, MACs, randomness ---------------------------------------------------------- */

static const char *const DIGESTS[] = {"sha1", "sha256", "sha384", "sha512", NULL};
static const char *const DIGEST_NAMES[] = {"SHA1", "SHA256", "SHA384", "SHA512"};

/* digest(name, data) -> raw digest */
static int l_digest(lua_State *L) {
    const char *md = DIGEST_NAMES[luaL_checkoption(L, 1, NULL, DIGESTS)];
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    unsigned char out[EVP_MAX_MD_SIZE];
    size_t len = 0;
    ERR_clear_error();
    if (!EVP_Q_digest(NULL, md, NULL, s, n, out, &len)) return t2t_fail(L, "digest");
    lua_pushlstring(L, (const char *)out, len);
    return 1;
}

/* hmac(name, key, data) -> raw MAC */
static int l_hmac(lua_State *L) {
    const char *md = DIGEST_NAMES[luaL_checkoption(L, 1, NULL, DIGESTS)];
    size_t kn, n;
    const char *key = luaL_checklstring(L, 2, &kn);
    const char *s = luaL_checklstring(L, 3, &n);
    unsigned char out[EVP_MAX_MD_SIZE];
    size_t len = 0;
    static const unsigned char nokey[1];
    ERR_clear_error();
    if (!EVP_Q_mac(NULL, "HMAC", NULL, md, NULL, kn ? (const void *)key : nokey, kn,
                   (const unsigned char *)s, n, out, sizeof out, &len))
        return t2t_fail(L, "hmac");
    lua_pushlstring(L, (const char *)out, len);
    OPENSSL_cleanse(out, sizeof out);
    return 1;
}

/* random_bytes(n) -> n bytes from the OpenSSL CSPRNG (n ≤ 1 MiB) */
static int l_random_bytes(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= (1 << 20), 1, "must be 0..1048576");
    luaL_Buffer b;
    unsigned char *o = (unsigned char *)luaL_buffinitsize(L, &b, (size_t)n);
    ERR_clear_error();
    if (n > 0 && RAND_bytes(o, (int)n) != 1) return t2t_fail(L, "random_bytes");
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

/* uuid4() -> "xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx" (lower case) */
static int l_uuid4(lua_State *L) {
    unsigned char u[16];
    char s[37];
    ERR_clear_error();
    if (RAND_bytes(u, sizeof u) != 1) return t2t_fail(L, "uuid4");
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
    snprintf(s, sizeof s,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
             u[13], u[14], u[15]);
    lua_pushstring(L, s);
    return 1;
}

/* equal(a, b) -> boolean, in time independent of where they differ (secrets, MACs) */
static int l_equal(lua_State *L) {
    size_t an, bn;
    const char *a = luaL_checklstring(L, 1, &an);
    const char *b = luaL_checklstring(L, 2, &bn);
    lua_pushboolean(L, an == bn && CRYPTO_memcmp(a, b, an) == 0);
    return 1;
}

/* ---- keys: creation --------------------------------------------------------------------- */

/* generate_key("rsa" [, bits=2048]) | generate_key("ed25519") -> Key | nil, err */
static int l_generate_key(lua_State *L) {
    static const char *const types[] = {"rsa", "ed25519", NULL};
    int t = luaL_checkoption(L, 1, NULL, types);
    lua_Integer bits = luaL_optinteger(L, 2, 2048);
    if (t == 0)
        luaL_argcheck(L, bits == 2048 || bits == 3072 || bits == 4096, 2, "RSA bits must be "
                      "2048, 3072 or 4096");
    t2t_key *k = t2t_key_new(L);
    ERR_clear_error();
    k->pkey = t == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits)
                     : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (k->pkey == NULL) return t2t_fail(L, "generate_key");
    k->priv = 1;
    return 1;
}

static int has(const char *s, size_t n, const char *what) {
    return memmem(s, n, what, strlen(what)) != NULL;
}

/* load_key(pem_or_der [, passphrase]) -> Key | nil, err.  Reads the first private key (any
 * PEM form: PKCS#8, encrypted PKCS#8, traditional) or else the first public key; a PEM bundle
 * holding a certificate and its key is fine.  Never prompts for a passphrase. */
static int l_load_key(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *pass = luaL_optstring(L, 2, NULL);
    luaL_argcheck(L, n <= INT_MAX, 1, "too large");
    int pem = has(s, n, "-----BEGIN ");
    int privpem = pem && has(s, n, "PRIVATE KEY-----");
    int encrypted = privpem && (has(s, n, "ENCRYPTED PRIVATE KEY-----") ||
                                has(s, n, "Proc-Type: 4,ENCRYPTED"));
    if (encrypted && pass == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "load_key: the private key is encrypted; a passphrase is needed");
        return 2;
    }
    t2t_scope *sc = t2t_scope_new(L);
    t2t_key *k = t2t_key_new(L);
    ERR_clear_error();
    BIO *b = t2t_scope_add(sc, BIO_new_mem_buf(s, (int)n), t2t_free_bio);
    if (b == NULL) return t2t_fail(L, "load_key");
    if (privpem) {
        k->pkey = PEM_read_bio_PrivateKey(b, NULL, t2t_pass_cb, (void *)pass);
        k->priv = k->pkey != NULL;
    } else if (pem) {
        k->pkey = PEM_read_bio_PUBKEY(b, NULL, t2t_pass_cb, NULL);
    } else {
        const unsigned char *p = (const unsigned char *)s;
        k->pkey = d2i_AutoPrivateKey(NULL, &p, (long)n);
        k->priv = k->pkey != NULL;
        if (k->pkey == NULL) {
            p = (const unsigned char *)s;
            k->pkey = d2i_PUBKEY(NULL, &p, (long)n);
        }
    }
    t2t_scope_close(sc);
    if (k->pkey == NULL) {
        if (encrypted) {
            ERR_clear_error();
            lua_pushnil(L);
            lua_pushliteral(L, "load_key: cannot decrypt the private key (wrong passphrase?)");
            return 2;
        }
        if (pem && !has(s, n, "KEY-----")) {
            ERR_clear_error();
            lua_pushnil(L);
            lua_pushliteral(L, "load_key: no key in this PEM");
            return 2;
        }
        return t2t_fail(L, "load_key");
    }
    if (!t2t_key_supported(k->pkey)) {
        t2t_key_close(k);
        lua_pushnil(L);
        lua_pushliteral(L, "load_key: only RSA and Ed25519 keys are supported");
        return 2;
    }
    return 1;
}

static void free_bn(void *p) { BN_clear_free(p); }
static void free_bld(void *p) { OSSL_PARAM_BLD_free(p); }
static void free_params(void *p) { OSSL_PARAM_free(p); }
static void free_secret(void *p) {
    /* the first size_t of the block is the size of the data after it */
    size_t *z = p;
    OPENSSL_clear_free(z, z[0] + sizeof *z);
}

/* A scratch buffer for decoded secrets: cleansed when freed. */
static unsigned char *secret_buf(t2t_scope *sc, size_t n) {
    size_t *z = OPENSSL_zalloc(n + sizeof *z);
    if (z == NULL) return NULL;
    z[0] = n;
    return t2t_scope_add(sc, z, free_secret) ? (unsigned char *)(z + 1) : NULL;
}

/* Decode the base64url string at stack index i into a new BIGNUM held by the scope. */
static BIGNUM *jwk_bn(t2t_scope *sc, lua_State *L, int i, int secret, unsigned char *tmp) {
    size_t n;
    const char *s = lua_tolstring(L, i, &n);
    long len = b64_decode(s, n, tmp, 1);
    if (len <= 0) return NULL;
    BIGNUM *bn = t2t_scope_add(sc, secret ? BN_secure_new() : BN_new(), free_bn);
    if (bn == NULL || BN_bin2bn(tmp, (int)len, bn) == NULL) return NULL;
    OPENSSL_cleanse(tmp, (size_t)len);
    return bn;
}

static const char *const RSA_JWK[] = {"n", "e", "d", "p", "q", "dp", "dq", "qi"};
static const char *const RSA_PARAM[] = {
    OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
    OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1,
    OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};

/* RSA JWK (fields already at stack top-7..top as strings or nil) into k. */
static int rsa_from_jwk(lua_State *L, t2t_scope *sc, t2t_key *k, int base) {
    size_t maxlen = 0;
    int present[8];
    for (int i = 0; i < 8; i++) {
        size_t n = 0;
        present[i] = lua_type(L, base + i) == LUA_TSTRING;
        if (present[i]) lua_tolstring(L, base + i, &n);
        if (n > maxlen) maxlen = n;
    }
    if (!present[0] || !present[1]) return luaL_error(L, "key_from_jwk: RSA JWK needs n and e");
    int crt = present[3] + present[4] + present[5] + present[6] + present[7];
    if (crt != 0 && (crt != 5 || !present[2]))
        return luaL_error(L, "key_from_jwk: RSA JWK needs all of d, p, q, dp, dq, qi, or none");
    if (!present[2]) crt = 0;
    unsigned char *tmp = secret_buf(sc, maxlen / 4 * 3 + 3);
    OSSL_PARAM_BLD *bld = t2t_scope_add(sc, OSSL_PARAM_BLD_new(), free_bld);
    if (tmp == NULL || bld == NULL) return 0;
    int nfields = present[2] ? (crt ? 8 : 3) : 2;
    for (int i = 0; i < nfields; i++) {
        BIGNUM *bn = jwk_bn(sc, L, base + i, i >= 2, tmp);
        if (bn == NULL) {
            ERR_clear_error();
            lua_pushfstring(L, "key_from_jwk: field %s is not valid base64url", RSA_JWK[i]);
            return -1;
        }
        if (!OSSL_PARAM_BLD_push_BN(bld, RSA_PARAM[i], bn)) return 0;
    }
    OSSL_PARAM *params = t2t_scope_add(sc, OSSL_PARAM_BLD_to_param(bld), free_params);
    EVP_PKEY_CTX *ctx = t2t_scope_add(sc, EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL),
                                      t2t_free_pkey_ctx);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &k->pkey, present[2] ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                          params) <= 0)
        return 0;
    k->priv = present[2];
    if (k->priv) {
        EVP_PKEY_CTX *chk = t2t_scope_add(sc, EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL),
                                          t2t_free_pkey_ctx);
        if (chk == NULL || EVP_PKEY_pairwise_check(chk) != 1) {
            t2t_key_close(k);
            ERR_clear_error();
            lua_pushliteral(L, "key_from_jwk: the private key does not match n and e");
            return -1;
        }
    }
    return 1;
}

/* OKP/Ed25519 JWK (x at base, d at base+1) into k. */
static int ed25519_from_jwk(lua_State *L, t2t_scope *sc, t2t_key *k, int base) {
    unsigned char *buf = secret_buf(sc, 96);
    if (buf == NULL) return 0;
    size_t xn = 0, dn = 0;
    const char *x = lua_tolstring(L, base, &xn);
    const char *d = lua_tolstring(L, base + 1, &dn);
    if (x == NULL && d == NULL) return luaL_error(L, "key_from_jwk: OKP JWK needs x or d");
    long xl = x && xn <= 64 ? b64_decode(x, xn, buf, 1) : -1;
    long dl = d && dn <= 64 ? b64_decode(d, dn, buf + 48, 1) : -1;
    if ((x && xl != 32) || (d && dl != 32)) {
        lua_pushliteral(L, "key_from_jwk: x and d must be 32 bytes of base64url");
        return -1;
    }
    if (d) {
        k->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, buf + 48, 32);
        k->priv = k->pkey != NULL;
        unsigned char pub[32];
        size_t pl = sizeof pub;
        if (k->pkey && x && (!EVP_PKEY_get_raw_public_key(k->pkey, pub, &pl) ||
                             CRYPTO_memcmp(pub, buf, 32) != 0)) {
            t2t_key_close(k);
            lua_pushliteral(L, "key_from_jwk: the private key does not match x");
            return -1;
        }
    } else {
        k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, buf, 32);
    }
    return k->pkey != NULL;
}

/* key_from_jwk{kty="RSA", n=, e= [, d, p, q, dp, dq, qi]} | {kty="OKP", crv="Ed25519", x= [, d]}
 * -> Key | nil, err.  Builds the key from its parameters (OSSL_PARAM_BLD + EVP_PKEY_fromdata);
 * a private RSA key is checked against its public half. */
static int l_key_from_jwk(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "kty");
    const char *kty = lua_tostring(L, -1);
    int rsa = kty && strcmp(kty, "RSA") == 0;
    if (!rsa) {
        lua_getfield(L, 1, "crv");
        const char *crv = lua_tostring(L, -1);
        if (!kty || strcmp(kty, "OKP") != 0 || !crv || strcmp(crv, "Ed25519") != 0)
            return luaL_argerror(L, 1, "kty must be RSA, or OKP with crv Ed25519");
    }
    int base = lua_gettop(L) + 1;
    if (rsa) {
        for (int i = 0; i < 8; i++) lua_getfield(L, 1, RSA_JWK[i]);
    } else {
        lua_getfield(L, 1, "x");
        lua_getfield(L, 1, "d");
    }
    for (int i = base; i <= lua_gettop(L); i++)
        if (!lua_isnil(L, i) && lua_type(L, i) != LUA_TSTRING)
            return luaL_argerror(L, 1, "JWK fields must be base64url strings");
    t2t_scope *sc = t2t_scope_new(L);
    t2t_key *k = t2t_key_new(L);
    ERR_clear_error();
    int r = rsa ? rsa_from_jwk(L, sc, k, base) : ed25519_from_jwk(L, sc, k, base);
    t2t_scope_close(sc);
    if (r < 0) {                              /* message pushed */
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (r == 0 || k->pkey == NULL) {
        t2t_key_close(k);
        return t2t_fail(L, "key_from_jwk");
    }
    return 1;                                 /* the key is at the top */
}

/* ---- keys: methods ---------------------------------------------------------------------- */

static int key_is_rsa(const t2t_key *k) { return EVP_PKEY_is_a(k->pkey, "RSA"); }

/* "rsa", "ed25519", or what OpenSSL calls any other key a PEM or DER file may hold ("EC",
 * "DSA", "X25519", ...); such keys load, but sign and verify refuse them. */
static const char *key_type_name(const t2t_key *k) {
    if (key_is_rsa(k)) return "rsa";
    if (EVP_PKEY_is_a(k->pkey, "ED25519")) return "ed25519";
    const char *name = EVP_PKEY_get0_type_name(k->pkey);
    return name ? name : "unknown";
}

static int key_close(lua_State *L) {
    t2t_key_close(luaL_checkudata(L, 1, T2T_KEY_MT));
    return 0;
}

static int key_tostring(lua_State *L) {
    t2t_key *k = luaL_checkudata(L, 1, T2T_KEY_MT);
    if (k->pkey == NULL) lua_pushliteral(L, "t2t.crypto.Key (closed)");
    else lua_pushfstring(L, "t2t.crypto.Key (%s %d, %s)", key_type_name(k),
                         EVP_PKEY_get_bits(k->pkey), k->priv ? "private" : "public");
    return 1;
}

static int key_type(lua_State *L) {
    lua_pushstring(L, key_type_name(t2t_key_check(L, 1)));
    return 1;
}

static int key_bits(lua_State *L) {
    lua_pushinteger(L, EVP_PKEY_get_bits(t2t_key_check(L, 1)->pkey));
    return 1;
}

static int key_is_private(lua_State *L) {
    lua_pushboolean(L, t2t_key_check(L, 1)->priv);
    return 1;
}

/* key:private_pem([passphrase]) -> PKCS#8 PEM; encrypted (AES-256-CBC, PBKDF2) with one. */
static int key_private_pem(lua_State *L) {
    t2t_key *k = t2t_key_check(L, 1);
    size_t pn = 0;
    const char *pass = luaL_optlstring(L, 2, NULL, &pn);
    luaL_argcheck(L, k->priv, 1, "not a private key");
    luaL_argcheck(L, pass == NULL || (pn > 0 && pn <= 1023), 2, "passphrase must be 1..1023 bytes");
    t2t_scope *sc = t2t_scope_new(L);
    ERR_clear_error();
    BIO *b = t2t_scope_add(sc, BIO_new(BIO_s_secmem()), t2t_free_bio);
    if (b == NULL || !PEM_write_bio_PKCS8PrivateKey(b, k->pkey, pass ? EVP_aes_256_cbc() : NULL,
                                                    pass, (int)pn, NULL, NULL)) {
        t2t_scope_close(sc);
        return t2t_fail(L, "private_pem");
    }
    t2t_push_bio(L, b);
    t2t_scope_close(sc);                      /* secmem BIO: cleansed on free */
    return 1;
}

/* key:public_pem() -> SubjectPublicKeyInfo PEM;  key:public_der() -> the same in DER. */
static int public_out(lua_State *L, int pem) {
    t2t_key *k = t2t_key_check(L, 1);
    t2t_scope *sc = t2t_scope_new(L);
    ERR_clear_error();
    BIO *b = t2t_scope_add(sc, BIO_new(BIO_s_mem()), t2t_free_bio);
    if (b == NULL || !(pem ? PEM_write_bio_PUBKEY(b, k->pkey) : i2d_PUBKEY_bio(b, k->pkey))) {
        t2t_scope_close(sc);
        return t2t_fail(L, "public key");
    }
    t2t_push_bio(L, b);
    t2t_scope_close(sc);
    return 1;
}
static int key_public_pem(lua_State *L) { return public_out(L, 1); }
static int key_public_der(lua_State *L) { return public_out(L, 0); }

/* key:public_key() -> a new Key holding only the public half */
static int key_public_key(lua_State *L) {
    t2t_key *k = t2t_key_check(L, 1);
    t2t_key *pub = t2t_key_new(L);
    unsigned char *der = NULL;
    ERR_clear_error();
    int len = i2d_PUBKEY(k->pkey, &der);
    if (len > 0) {
        const unsigned char *p = der;
        pub->pkey = d2i_PUBKEY(NULL, &p, len);
    }
    OPENSSL_free(der);
    if (pub->pkey == NULL) return t2t_fail(L, "public_key");
    return 1;
}

/* key:equals(other) -> true when both hold the same public key */
static int key_equals(lua_State *L) {
    t2t_key *a = t2t_key_check(L, 1), *b = t2t_key_check(L, 2);
    lua_pushboolean(L, EVP_PKEY_eq(a->pkey, b->pkey) == 1);
    ERR_clear_error();
    return 1;
}

/* Push the big-endian bytes of a BIGNUM key parameter as base64url (JWK form). */
static int push_bn_param(lua_State *L, t2t_scope *sc, EVP_PKEY *pkey, const char *name) {
    BIGNUM *bn = NULL;
    if (!EVP_PKEY_get_bn_param(pkey, name, &bn) || !t2t_scope_add(sc, bn, free_bn)) return 0;
    unsigned char buf[2048];
    int n = BN_num_bytes(bn);
    if (n <= 0 || n > (int)sizeof buf) return 0;
    BN_bn2bin(bn, buf);
    push_b64(L, buf, (size_t)n, 1);
    return 1;
}

/* key:jwk() -> the public JWK as a table: {kty="RSA", n, e} or {kty="OKP", crv="Ed25519", x} */
static int key_jwk(lua_State *L) {
    t2t_key *k = t2t_key_check(L, 1);
    t2t_scope *sc = t2t_scope_new(L);
    lua_createtable(L, 0, 3);
    ERR_clear_error();
    if (key_is_rsa(k)) {
        lua_pushliteral(L, "RSA");
        lua_setfield(L, -2, "kty");
        if (!push_bn_param(L, sc, k->pkey, OSSL_PKEY_PARAM_RSA_N)) goto fail;
        lua_setfield(L, -2, "n");
        if (!push_bn_param(L, sc, k->pkey, OSSL_PKEY_PARAM_RSA_E)) goto fail;
        lua_setfield(L, -2, "e");
    } else {
        unsigned char pub[32];
        size_t pl = sizeof pub;
        if (!EVP_PKEY_get_raw_public_key(k->pkey, pub, &pl)) goto fail;
        lua_pushliteral(L, "OKP");
        lua_setfield(L, -2, "kty");
        lua_pushliteral(L, "Ed25519");
        lua_setfield(L, -2, "crv");
        push_b64(L, pub, pl, 1);
        lua_setfield(L, -2, "x");
    }
    t2t_scope_close(sc);
    return 1;
fail:
    t2t_scope_close(sc);
    return t2t_fail(L, "jwk");
}

/* JWS algorithms: digest name (NULL for EdDSA) and PSS flag. */
static const char *const ALGS[] = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                   "EdDSA", NULL};
static const char *const ALG_MD[] = {"SHA256", "SHA384", "SHA512", "SHA256", "SHA384",
                                     "SHA512", NULL};

/* Set up mctx for alg over k (sign or verify).  Returns 1, or 0 on an OpenSSL failure. */
static int sig_init(EVP_MD_CTX *mctx, t2t_key *k, int alg, int sign) {
    EVP_PKEY_CTX *pctx = NULL;
    int ok = sign ? EVP_DigestSignInit_ex(mctx, &pctx, ALG_MD[alg], NULL, NULL, k->pkey, NULL)
                  : EVP_DigestVerifyInit_ex(mctx, &pctx, ALG_MD[alg], NULL, NULL, k->pkey, NULL);
    if (ok <= 0) return 0;
    if (alg >= 3 && alg <= 5) {               /* PSS, salt length = digest length (RFC 7518) */
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0)
            return 0;
    }
    return 1;
}

/* Does alg fit the key type?  Exactly: a key of another type (a P-256 key from an EC
 * certificate or PFX) fits nothing, else EdDSA would run ECDSA under the EdDSA name. */
static int alg_fits(t2t_key *k, int alg) {
    return alg == 6 ? EVP_PKEY_is_a(k->pkey, "ED25519") : key_is_rsa(k);
}

/* key:sign(alg, data) -> raw signature.  alg: RS256/384/512, PS256/384/512 (RSA), EdDSA. */
static int key_sign(lua_State *L) {
    t2t_key *k = t2t_key_check(L, 1);
    int alg = luaL_checkoption(L, 2, NULL, ALGS);
    size_t n;
    const char *data = luaL_checklstring(L, 3, &n);
    luaL_argcheck(L, k->priv, 1, "signing needs a private key");
    luaL_argcheck(L, alg_fits(k, alg), 2, "algorithm does not match the key type");
    unsigned char sig[2048];
    size_t siglen = sizeof sig;
    if ((size_t)EVP_PKEY_get_size(k->pkey) > siglen) return luaL_argerror(L, 1, "key too large");
    t2t_scope *sc = t2t_scope_new(L);
    ERR_clear_error();
    EVP_MD_CTX *mctx = t2t_scope_add(sc, EVP_MD_CTX_new(), t2t_free_md_ctx);
    int ok = mctx && sig_init(mctx, k, alg, 1) &&
             EVP_DigestSign(mctx, sig, &siglen, (const unsigned char *)data, n) > 0;
    t2t_scope_close(sc);
    if (!ok) return t2t_fail(L, "sign");
    lua_pushlstring(L, (const char *)sig, siglen);
    return 1;
}

/* key:verify(alg, data, sig) -> true | false (bad signature) | nil, err (alg does not fit). */
static int key_verify(lua_State *L) {
    t2t_key *k = t2t_key_check(L, 1);
    int alg = luaL_checkoption(L, 2, NULL, ALGS);
    size_t n, sn;
    const char *data = luaL_checklstring(L, 3, &n);
    const char *sig = luaL_checklstring(L, 4, &sn);
    if (!alg_fits(k, alg)) {
        lua_pushnil(L);
        lua_pushfstring(L, "verify: algorithm %s does not match this %s key", ALGS[alg],
                        key_type_name(k));
        return 2;
    }
    t2t_scope *sc = t2t_scope_new(L);
    ERR_clear_error();
    EVP_MD_CTX *mctx = t2t_scope_add(sc, EVP_MD_CTX_new(), t2t_free_md_ctx);
    if (mctx == NULL || !sig_init(mctx, k, alg, 0)) {
        t2t_scope_close(sc);
        return t2t_fail(L, "verify");
    }
    int r = EVP_DigestVerify(mctx, (const unsigned char *)sig, sn, (const unsigned char *)data, n);
    t2t_scope_close(sc);
    ERR_clear_error();                        /* a bad signature leaves errors behind */
    lua_pushboolean(L, r == 1);
    return 1;
}

/* RSA encryption paddings: PKCS#1 v1.5 (what the EXO module uses for SecureString values,
 * wire.md §2.4) and OAEP with SHA-1 (OpenSSL's and .NET's OaepSHA1 default). */
static const char *const PADS[] = {"pkcs1", "oaep", NULL};
static const int PAD_IDS[] = {RSA_PKCS1_PADDING, RSA_PKCS1_OAEP_PADDING};

/* One RSA encryption or decryption into out (at least the key's size). */
static int rsa_crypt(t2t_key *k, int decrypt, int pad, const unsigned char *in, size_t n,
                     unsigned char *out, size_t *outlen) {
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    int ok = pc != NULL &&
             (decrypt ? EVP_PKEY_decrypt_init(pc) : EVP_PKEY_encrypt_init(pc)) > 0 &&
             EVP_PKEY_CTX_set_rsa_padding(pc, pad) > 0 &&
             (decrypt ? EVP_PKEY_decrypt(pc, out, outlen, in, n)
                      : EVP_PKEY_encrypt(pc, out, outlen, in, n)) > 0;
    EVP_PKEY_CTX_free(pc);
    return ok;
}

/* key:encrypt(data [, "pkcs1"|"oaep"]) -> ciphertext (RSA public key; pkcs1 by default).
 * key:decrypt(ciphertext [, "pkcs1"|"oaep"]) -> plaintext | nil, err (private RSA key).  The
 * output buffer is wiped either way (it holds the plaintext when decrypting). */
static int key_crypt(lua_State *L, int decrypt) {
    t2t_key *k = t2t_key_check(L, 1);
    size_t n;
    const char *data = luaL_checklstring(L, 2, &n);
    int pad = PAD_IDS[luaL_checkoption(L, 3, "pkcs1", PADS)];
    luaL_argcheck(L, key_is_rsa(k), 1, decrypt ? "decryption needs an RSA key" : "encryption needs an RSA key");
    luaL_argcheck(L, !decrypt || k->priv, 1, "decryption needs a private key");
    unsigned char out[2048];
    size_t outlen = sizeof out;
    if ((size_t)EVP_PKEY_get_size(k->pkey) > outlen) return luaL_argerror(L, 1, "key too large");
    ERR_clear_error();
    int ok = rsa_crypt(k, decrypt, pad, (const unsigned char *)data, n, out, &outlen);
    if (ok) lua_pushlstring(L, (const char *)out, outlen);
    OPENSSL_cleanse(out, sizeof out);
    if (!ok) return t2t_fail(L, decrypt ? "decrypt" : "encrypt");
    return 1;
}
static int key_encrypt(lua_State *L) { return key_crypt(L, 0); }
static int key_decrypt(lua_State *L) { return key_crypt(L, 1); }

static const luaL_Reg key_methods[] = {
    {"type", key_type},           {"bits", key_bits},
    {"is_private", key_is_private}, {"private_pem", key_private_pem},
    {"public_pem", key_public_pem}, {"public_der", key_public_der},
    {"public_key", key_public_key}, {"equals", key_equals},
    {"jwk", key_jwk},             {"sign", key_sign},
    {"verify", key_verify},       {"encrypt", key_encrypt},
    {"decrypt", key_decrypt},     {"close", key_close},
    {NULL, NULL}};

static const luaL_Reg key_meta[] = {
    {"__gc", key_close}, {"__close", key_close}, {"__tostring", key_tostring},
    {"__index", NULL},   {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"base64_encode", l_base64_encode},       {"base64_decode", l_base64_decode},
    {"base64url_encode", l_base64url_encode}, {"base64url_decode", l_base64url_decode},
    {"hex_encode", l_hex_encode},             {"hex_decode", l_hex_decode},
    {"digest", l_digest},                     {"hmac", l_hmac},
    {"random_bytes", l_random_bytes},         {"uuid4", l_uuid4},
    {"equal", l_equal},                       {"generate_key", l_generate_key},
    {"load_key", l_load_key},                 {"key_from_jwk", l_key_from_jwk},
    {NULL, NULL}};

int luaopen_t2t_crypto(lua_State *L) {
    if (luaL_newmetatable(L, T2T_KEY_MT)) {
        luaL_setfuncs(L, key_meta, 0);
        luaL_newlib(L, key_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    luaL_getmetatable(L, T2T_KEY_MT);
    lua_getfield(L, -1, "__index");
    lua_setfield(L, -3, "Key");               /* the method table, for Lua-side additions */
    lua_pop(L, 1);
    lua_pushliteral(L, OPENSSL_VERSION_TEXT);
    lua_setfield(L, -2, "openssl_version");
    return 1;
}
