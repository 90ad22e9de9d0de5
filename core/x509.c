/* x509.c — X.509 certificates and PKCS#12 over OpenSSL 3.  Module "t2t.core.x509".
 *
 * Certificates are "t2t.crypto.Cert" userdata (closed state first, X509 stored at once, one
 * idempotent never-raising close for __gc/__close).  Keys come from and go to the
 * "t2t.crypto.Key" userdata of crypto.c (crypto_priv.h); this module requires that one first
 * so the Key metatable exists.  OpenSSL temporaries live in a scope guard (crypto_priv.h). */
#include <arpa/inet.h>
#include <limits.h>
#include <string.h>
#include <time.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto_priv.h"

typedef struct {
    X509 *x;
} t2t_cert;

static void cert_close(t2t_cert *c) {
    if (c && c->x) {
        X509_free(c->x);
        c->x = NULL;
    }
}

static t2t_cert *cert_new(lua_State *L) {
    t2t_cert *c = lua_newuserdatauv(L, sizeof *c, 0);
    c->x = NULL;
    luaL_setmetatable(L, T2T_CERT_MT);
    return c;
}

static X509 *cert_check(lua_State *L, int i) {
    t2t_cert *c = luaL_checkudata(L, i, T2T_CERT_MT);
    if (c->x == NULL) luaL_argerror(L, i, "certificate is closed");
    return c->x;
}

/* The X509 in field `name` of the table at index t, or NULL if absent; raises if not a Cert. */
static X509 *opt_cert_field(lua_State *L, int t, const char *name) {
    lua_getfield(L, t, name);
    X509 *x = lua_isnil(L, -1) ? NULL : cert_check(L, lua_gettop(L));
    lua_pop(L, 1);                            /* the table keeps it alive */
    return x;
}

static t2t_key *opt_key_field(lua_State *L, int t, const char *name) {
    lua_getfield(L, t, name);
    t2t_key *k = lua_isnil(L, -1) ? NULL : t2t_key_check(L, lua_gettop(L));
    lua_pop(L, 1);
    return k;
}

static void free_x509_stack(void *p) { sk_X509_pop_free(p, X509_free); }
static void free_gens(void *p) { GENERAL_NAMES_free(p); }
static void free_p12(void *p) { PKCS12_free(p); }
static void free_bn(void *p) { BN_free(p); }
static void free_store(void *p) { X509_STORE_free(p); }
static void free_store_ctx(void *p) { X509_STORE_CTX_free(p); }
static void free_ossl(void *p) { OPENSSL_free(p); }

/* ---- loading ---------------------------------------------------------------------------- */

/* load_cert(pem_or_der) -> Cert | nil, err (the first certificate of a PEM bundle) */
static int l_load_cert(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_argcheck(L, n <= INT_MAX, 1, "too large");
    t2t_scope *sc = t2t_scope_new(L);
    t2t_cert *c = cert_new(L);
    ERR_clear_error();
    if (memmem(s, n, "-----BEGIN", 10)) {
        BIO *b = t2t_scope_add(sc, BIO_new_mem_buf(s, (int)n), t2t_free_bio);
        if (b) c->x = PEM_read_bio_X509(b, NULL, t2t_pass_cb, NULL);
    } else {
        const unsigned char *p = (const unsigned char *)s;
        c->x = d2i_X509(NULL, &p, (long)n);
    }
    t2t_scope_close(sc);
    if (c->x == NULL) return t2t_fail(L, "load_cert");
    return 1;
}

/* load_certs(pem) -> {Cert...} (every certificate in the PEM, in order; may be empty) */
static int l_load_certs(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_argcheck(L, n <= INT_MAX, 1, "too large");
    t2t_scope *sc = t2t_scope_new(L);
    lua_newtable(L);
    ERR_clear_error();
    BIO *b = t2t_scope_add(sc, BIO_new_mem_buf(s, (int)n), t2t_free_bio);
    if (b == NULL) return t2t_fail(L, "load_certs");
    for (int i = 1;; i++) {
        t2t_cert *c = cert_new(L);
        c->x = PEM_read_bio_X509(b, NULL, t2t_pass_cb, NULL);
        if (c->x == NULL) {
            lua_pop(L, 1);
            break;
        }
        lua_rawseti(L, -2, i);
    }
    ERR_clear_error();                        /* end of input shows up as "no start line" */
    t2t_scope_close(sc);
    return 1;
}

/* ---- creation --------------------------------------------------------------------------- */

static const char *const KEY_USAGES[] = {
    "digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement",
    "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly", NULL};

/* Is s a dotted OID or one of OpenSSL's short EKU names? */
static int eku_ok(const char *s) {
    static const char *const names[] = {"serverAuth", "clientAuth", "codeSigning",
                                        "emailProtection", "timeStamping", "OCSPSigning", NULL};
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) return 1;
    if (!*s) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.')) return 0;
    return 1;
}

/* Join the strings of the list at opts[field] with ',' after prefix into a Lua string on the
 * stack (validated by ok, or by the KEY_USAGES table when ok is NULL); nil if absent. */
static void join_list(lua_State *L, int t, const char *field, const char *prefix,
                      int (*ok)(const char *)) {
    lua_getfield(L, t, field);
    if (lua_isnil(L, -1)) return;
    if (!lua_istable(L, -1)) luaL_error(L, "create_cert: %s must be a list", field);
    luaL_Buffer b;
    int list = lua_gettop(L);
    luaL_buffinit(L, &b);
    luaL_addstring(&b, prefix);
    for (lua_Integer i = 1; i <= luaL_len(L, list); i++) {
        if (i > 1) luaL_addchar(&b, ',');
        lua_rawgeti(L, list, i);              /* a number is converted in this slot only, so */
        const char *s = lua_tostring(L, -1);  /* s lives as long as the slot: add it from there */
        int good = s && (ok ? ok(s) : 0);
        for (int j = 0; s && !ok && KEY_USAGES[j]; j++) good |= strcmp(s, KEY_USAGES[j]) == 0;
        if (!good) luaL_error(L, "create_cert: unknown %s entry '%s'", field, s ? s : "?");
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_remove(L, list);
}

/* nameConstraints from opts.name_constraints = {"DNS:name", "IP:addr/mask", ...}: the only
 * names the CA may certify (permitted subtrees), pushed as OpenSSL's textual value; nil when
 * absent.  Entries are checked character by character: the text is OpenSSL's config syntax. */
static void join_constraints(lua_State *L, int t) {
    lua_getfield(L, t, "name_constraints");
    if (lua_isnil(L, -1)) return;
    if (!lua_istable(L, -1)) luaL_error(L, "create_cert: name_constraints must be a list");
    int list = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "critical");
    for (lua_Integer i = 1; i <= luaL_len(L, list); i++) {
        lua_rawgeti(L, list, i);
        const char *s = lua_tostring(L, -1);
        const char *allowed = NULL, *v = s;
        if (s && strncmp(s, "DNS:", 4) == 0) allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-", v += 4;
        else if (s && strncmp(s, "IP:", 3) == 0) allowed = "0123456789abcdefABCDEF:./", v += 3;
        if (!allowed || !*v || v[strspn(v, allowed)] != '\0')
            luaL_error(L, "create_cert: bad name_constraints entry '%s' (DNS:name or IP:addr/mask)", s ? s : "?");
        lua_pop(L, 1);
        luaL_addstring(&b, ",permitted;");
        lua_rawgeti(L, list, i);             /* added from the stack slot: s stays alive */
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_remove(L, list);
}

/* Add extension nid with OpenSSL's textual value. */
static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value) {
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    if (e == NULL) return 0;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok;
}

/* One SAN entry: "DNS:name", "IP:addr", "email:x", "URI:x", or a bare name or address. */
static GENERAL_NAME *san_entry(const char *s, size_t n) {
    int type = GEN_DNS;
    if (strncmp(s, "DNS:", 4) == 0) s += 4, n -= 4;
    else if (strncmp(s, "IP:", 3) == 0) s += 3, n -= 3, type = GEN_IPADD;
    else if (strncmp(s, "email:", 6) == 0) s += 6, n -= 6, type = GEN_EMAIL;
    else if (strncmp(s, "URI:", 4) == 0) s += 4, n -= 4, type = GEN_URI;
    else {
        unsigned char a[16];
        if (inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1) type = GEN_IPADD;
    }
    if (n == 0 || strlen(s) != n) return NULL;
    GENERAL_NAME *g = GENERAL_NAME_new();
    if (g == NULL) return NULL;
    if (type == GEN_IPADD) {
        ASN1_OCTET_STRING *ip = a2i_IPADDRESS(s);
        if (ip == NULL) goto fail;
        GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
    } else {
        ASN1_IA5STRING *v = ASN1_IA5STRING_new();
        if (v == NULL || !ASN1_STRING_set(v, s, (int)n)) {
            ASN1_IA5STRING_free(v);
            goto fail;
        }
        GENERAL_NAME_set0_value(g, type, v);
    }
    return g;
fail:
    GENERAL_NAME_free(g);
    return NULL;
}

/* subjectAltName from the list opts.san (at stack index t). Returns 1, 0 (OpenSSL), -1 (bad). */
static int add_san(lua_State *L, t2t_scope *sc, X509 *x, int t) {
    lua_getfield(L, t, "san");
    int list = lua_gettop(L);
    if (lua_isnil(L, list)) {
        lua_pop(L, 1);
        return 1;
    }
    if (!lua_istable(L, list)) luaL_error(L, "create_cert: san must be a list");
    GENERAL_NAMES *gens = t2t_scope_add(sc, sk_GENERAL_NAME_new_null(), free_gens);
    if (gens == NULL) return 0;
    for (lua_Integer i = 1; i <= luaL_len(L, list); i++) {
        lua_rawgeti(L, list, i);
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        GENERAL_NAME *g = s ? san_entry(s, n) : NULL;
        if (g == NULL) {
            ERR_clear_error();
            lua_pushfstring(L, "create_cert: bad san entry #%d '%s'", (int)i, s ? s : "?");
            return -1;
        }
        if (!sk_GENERAL_NAME_push(gens, g)) {
            GENERAL_NAME_free(g);
            return 0;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return sk_GENERAL_NAME_num(gens) == 0 ||
           X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
}

/* Subject from opts.subject: a list of {field, value} pairs in DER order. */
static int set_subject(lua_State *L, X509 *x, int t) {
    lua_getfield(L, t, "subject");
    int list = lua_gettop(L);
    X509_NAME *nm = X509_get_subject_name(x);
    for (lua_Integer i = 1; i <= luaL_len(L, list); i++) {
        if (lua_rawgeti(L, list, i) != LUA_TTABLE)
            luaL_error(L, "create_cert: subject entry #%d must be a {field, value} pair", (int)i);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        const char *f = lua_tostring(L, -2), *v = lua_tostring(L, -1);
        if (!f || !v || !X509_NAME_add_entry_by_txt(nm, f, MBSTRING_UTF8,
                                                    (const unsigned char *)v, -1, -1, 0)) {
            ERR_clear_error();
            lua_pushfstring(L, "create_cert: bad subject field '%s'", f ? f : "?");
            return -1;
        }
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
    return 1;
}

static int set_serial(lua_State *L, t2t_scope *sc, X509 *x, const char *hex) {
    BIGNUM *bn = t2t_scope_add(sc, BN_new(), free_bn);
    if (bn == NULL) return 0;
    if (hex) {
        if (BN_hex2bn(&bn, hex) != (int)strlen(hex) || BN_is_zero(bn) || BN_is_negative(bn)) {
            ERR_clear_error();
            lua_pushliteral(L, "create_cert: serial must be positive hex");
            return -1;
        }
    } else if (!BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ODD)) {
        return 0;                             /* 127 bits: positive, never zero */
    }
    return BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
}

/* create_cert(opts) -> Cert | nil, err.  opts: key (subject public key), subject = {{f, v}..},
 * issuer_cert + issuer_key (CA-signed; else self-signed by key), serial (hex), not_before,
 * not_after (epoch) or days, san = {...}, ca, pathlen, key_usage, ext_key_usage,
 * name_constraints = {"DNS:name", "IP:addr/mask", ...} (a CA's permitted subtrees). */
static int l_create_cert(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    t2t_key *key = opt_key_field(L, 1, "key");
    X509 *issuer = opt_cert_field(L, 1, "issuer_cert");
    t2t_key *ikey = opt_key_field(L, 1, "issuer_key");
    luaL_argcheck(L, key != NULL, 1, "key is required");
    if (issuer) luaL_argcheck(L, ikey != NULL, 1, "issuer_cert needs issuer_key");
    if (!ikey) ikey = key;
    luaL_argcheck(L, ikey->priv, 1, "the signing key (issuer_key, or key when self-signed) must "
                  "be private");
    if (issuer) {
        int match = X509_check_private_key(issuer, ikey->pkey) == 1;
        ERR_clear_error();
        luaL_argcheck(L, match, 1, "issuer_key does not match issuer_cert");
    }
    lua_getfield(L, 1, "subject");
    luaL_argcheck(L, lua_istable(L, -1), 1, "subject must be a list of {field, value}");
    lua_pop(L, 1);
    lua_getfield(L, 1, "serial");
    const char *serial = lua_tostring(L, -1);         /* stays on the stack */
    lua_Integer days = (lua_getfield(L, 1, "days"), luaL_optinteger(L, -1, 365));
    luaL_argcheck(L, days >= 0 && days <= 3660000, 1, "days must be 0..3660000");
    lua_Integer nb = (lua_getfield(L, 1, "not_before"), luaL_optinteger(L, -1, (lua_Integer)time(NULL)));
    luaL_argcheck(L, nb > -((lua_Integer)1 << 40) && nb < ((lua_Integer)1 << 40), 1,
                  "not_before out of range");  /* so nb + days * 86400 cannot overflow */
    lua_Integer na = (lua_getfield(L, 1, "not_after"), luaL_optinteger(L, -1, nb + days * 86400));
    luaL_argcheck(L, na > nb, 1, "not_after must be after not_before");
    int ca = (lua_getfield(L, 1, "ca"), lua_toboolean(L, -1));
    lua_Integer pathlen = (lua_getfield(L, 1, "pathlen"), luaL_optinteger(L, -1, -1));
    int is_rsa = EVP_PKEY_is_a(key->pkey, "RSA");
    join_list(L, 1, "key_usage", "critical,", NULL);
    const char *ku = lua_tostring(L, -1);
    if (!ku) ku = ca ? "critical,keyCertSign,cRLSign,digitalSignature"
                : is_rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature";
    join_list(L, 1, "ext_key_usage", "", eku_ok);
    const char *eku = lua_tostring(L, -1);
    if (!eku && !ca) eku = "serverAuth,clientAuth";
    join_constraints(L, 1);
    const char *nc = lua_tostring(L, -1);
    luaL_argcheck(L, !nc || ca, 1, "name_constraints are for a CA (ca = true)");
    char bc[64];
    if (ca && pathlen >= 0) snprintf(bc, sizeof bc, "critical,CA:TRUE,pathlen:%d", (int)pathlen);
    else snprintf(bc, sizeof bc, ca ? "critical,CA:TRUE" : "CA:FALSE");

    t2t_scope *sc = t2t_scope_new(L);
    t2t_cert *c = cert_new(L);
    ERR_clear_error();
    X509 *x = c->x = X509_new();
    if (x == NULL) goto ossl;
    int r = set_subject(L, x, 1);
    if (r < 0) goto bad;
    r = set_serial(L, sc, x, serial);
    if (r < 0) goto bad;
    X509V3_CTX v3;
    if (!r || !X509_set_version(x, X509_VERSION_3) ||
        !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
                                        : X509_get_subject_name(x)) ||
        !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) || !X509_set_pubkey(x, key->pkey))
        goto ossl;
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    if (!X509V3_set_issuer_pkey(&v3, ikey->pkey) ||
        !add_ext(x, &v3, NID_basic_constraints, bc) || !add_ext(x, &v3, NID_key_usage, ku) ||
        (eku && !add_ext(x, &v3, NID_ext_key_usage, eku)) ||
        (nc && !add_ext(x, &v3, NID_name_constraints, nc)) ||
        !add_ext(x, &v3, NID_subject_key_identifier, "hash") ||
        !add_ext(x, &v3, NID_authority_key_identifier, "keyid:always"))
        goto ossl;
    r = add_san(L, sc, x, 1);
    if (r < 0) goto bad;
    if (!r || X509_sign(x, ikey->pkey, EVP_PKEY_is_a(ikey->pkey, "RSA") ? EVP_sha256() : NULL) <= 0)
        goto ossl;
    t2t_scope_close(sc);
    return 1;                                 /* helpers leave the stack as they found it */
bad:                                          /* message on top */
    t2t_scope_close(sc);
    cert_close(c);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
ossl:
    t2t_scope_close(sc);
    cert_close(c);
    return t2t_fail(L, "create_cert");
}

/* ---- methods ---------------------------------------------------------------------------- */

static int cert_gc(lua_State *L) {
    cert_close(luaL_checkudata(L, 1, T2T_CERT_MT));
    return 0;
}

static int push_name(lua_State *L, X509_NAME *nm) {
    t2t_scope *sc = t2t_scope_new(L);
    BIO *b = t2t_scope_add(sc, BIO_new(BIO_s_mem()), t2t_free_bio);
    if (b == NULL || X509_NAME_print_ex(b, nm, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
        t2t_scope_close(sc);
        lua_pop(L, 1);
        return t2t_fail(L, "name");
    }
    t2t_push_bio(L, b);
    t2t_scope_close(sc);
    lua_remove(L, -2);                        /* the scope */
    return 1;
}

/* cert:subject() / cert:issuer() -> RFC 2253 string, e.g. "CN=sim,O=t2t" */
static int cert_subject(lua_State *L) { return push_name(L, X509_get_subject_name(cert_check(L, 1))); }
static int cert_issuer(lua_State *L) { return push_name(L, X509_get_issuer_name(cert_check(L, 1))); }

static int cert_tostring(lua_State *L) {
    t2t_cert *c = luaL_checkudata(L, 1, T2T_CERT_MT);
    if (c->x == NULL) {
        lua_pushliteral(L, "t2t.crypto.Cert (closed)");
        return 1;
    }
    lua_pushliteral(L, "t2t.crypto.Cert (");
    if (push_name(L, X509_get_subject_name(c->x)) != 1) {
        lua_pop(L, 2);
        lua_pushliteral(L, "?");
    }
    lua_pushliteral(L, ")");
    lua_concat(L, 3);
    return 1;
}

/* cert:serial() -> upper-case hex */
static int cert_serial(lua_State *L) {
    X509 *x = cert_check(L, 1);
    t2t_scope *sc = t2t_scope_new(L);
    BIGNUM *bn = t2t_scope_add(sc, ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL), free_bn);
    char *hex = bn ? t2t_scope_add(sc, BN_bn2hex(bn), free_ossl) : NULL;
    if (hex == NULL) {
        t2t_scope_close(sc);
        return t2t_fail(L, "serial");
    }
    lua_pushstring(L, hex);
    t2t_scope_close(sc);
    return 1;
}

static int push_time(lua_State *L, const ASN1_TIME *t) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!ASN1_TIME_to_tm(t, &tm)) return t2t_fail(L, "time");
    lua_pushinteger(L, (lua_Integer)timegm(&tm));
    return 1;
}

/* cert:not_before() / cert:not_after() -> epoch seconds */
static int cert_not_before(lua_State *L) { return push_time(L, X509_get0_notBefore(cert_check(L, 1))); }
static int cert_not_after(lua_State *L) { return push_time(L, X509_get0_notAfter(cert_check(L, 1))); }

/* cert:san() -> {"DNS:name", "IP:addr", ...} in certificate order */
static int cert_san(lua_State *L) {
    X509 *x = cert_check(L, 1);
    t2t_scope *sc = t2t_scope_new(L);
    lua_newtable(L);
    GENERAL_NAMES *gens = t2t_scope_add(sc, X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL),
                                        free_gens);
    ERR_clear_error();
    int n = gens ? sk_GENERAL_NAME_num(gens) : 0, k = 0;
    for (int i = 0; i < n; i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        int type;
        ASN1_STRING *v = GENERAL_NAME_get0_value(g, &type);
        const unsigned char *d = ASN1_STRING_get0_data(v);
        int len = ASN1_STRING_length(v);
        char ip[INET6_ADDRSTRLEN];
        if (type == GEN_DNS) lua_pushfstring(L, "DNS:%s", "");
        else if (type == GEN_EMAIL) lua_pushfstring(L, "email:%s", "");
        else if (type == GEN_URI) lua_pushfstring(L, "URI:%s", "");
        else if (type == GEN_IPADD && (len == 4 || len == 16) &&
                 inet_ntop(len == 4 ? AF_INET : AF_INET6, d, ip, sizeof ip)) {
            lua_pushfstring(L, "IP:%s", ip);
            lua_rawseti(L, -2, ++k);
            continue;
        } else continue;
        lua_pushlstring(L, (const char *)d, (size_t)len);
        lua_concat(L, 2);
        lua_rawseti(L, -2, ++k);
    }
    t2t_scope_close(sc);
    return 1;
}

/* cert:is_ca() -> basicConstraints CA:TRUE */
static int cert_is_ca(lua_State *L) {
    X509 *x = cert_check(L, 1);
    lua_pushboolean(L, (X509_get_extension_flags(x) & EXFLAG_CA) != 0);
    return 1;
}

/* cert:fingerprint("sha1"|"sha256"|"sha384"|"sha512") -> raw digest of the DER */
static int cert_fingerprint(lua_State *L) {
    static const char *const mds[] = {"sha1", "sha256", "sha384", "sha512", NULL};
    X509 *x = cert_check(L, 1);
    int m = luaL_checkoption(L, 2, "sha256", mds);
    const EVP_MD *md = m == 0 ? EVP_sha1() : m == 1 ? EVP_sha256() : m == 2 ? EVP_sha384() : EVP_sha512();
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ERR_clear_error();
    if (!X509_digest(x, md, out, &len)) return t2t_fail(L, "fingerprint");
    lua_pushlstring(L, (const char *)out, len);
    return 1;
}

/* cert:public_key() -> Key (public) */
static int cert_public_key(lua_State *L) {
    X509 *x = cert_check(L, 1);
    t2t_key *k = t2t_key_new(L);
    ERR_clear_error();
    k->pkey = X509_get_pubkey(x);
    if (k->pkey == NULL) return t2t_fail(L, "public_key");
    return 1;
}

/* cert:matches_key(key) -> whether key (public or private) is this certificate's key */
static int cert_matches_key(lua_State *L) {
    X509 *x = cert_check(L, 1);
    t2t_key *k = t2t_key_check(L, 2);
    lua_pushboolean(L, X509_check_private_key(x, k->pkey) == 1);
    ERR_clear_error();
    return 1;
}

/* cert:verify_signature(issuer Key or Cert) -> whether the issuer's key signed this cert */
static int cert_verify_signature(lua_State *L) {
    X509 *x = cert_check(L, 1);
    EVP_PKEY *pk = luaL_testudata(L, 2, T2T_CERT_MT) ? X509_get0_pubkey(cert_check(L, 2))
                                                     : t2t_key_check(L, 2)->pkey;
    lua_pushboolean(L, pk && X509_verify(x, pk) == 1);
    ERR_clear_error();
    return 1;
}

static int cert_out(lua_State *L, int pem) {
    X509 *x = cert_check(L, 1);
    t2t_scope *sc = t2t_scope_new(L);
    ERR_clear_error();
    BIO *b = t2t_scope_add(sc, BIO_new(BIO_s_mem()), t2t_free_bio);
    if (b == NULL || !(pem ? PEM_write_bio_X509(b, x) : i2d_X509_bio(b, x))) {
        t2t_scope_close(sc);
        return t2t_fail(L, "certificate");
    }
    t2t_push_bio(L, b);
    t2t_scope_close(sc);
    return 1;
}
static int cert_pem(lua_State *L) { return cert_out(L, 1); }
static int cert_der(lua_State *L) { return cert_out(L, 0); }

static int cert_eq(lua_State *L) {
    /* __eq runs for any two userdata when either is a Cert: anything else is just unequal */
    t2t_cert *a = luaL_testudata(L, 1, T2T_CERT_MT), *b = luaL_testudata(L, 2, T2T_CERT_MT);
    lua_pushboolean(L, a && b && a->x && b->x && X509_cmp(a->x, b->x) == 0);
    return 1;
}

/* Fill a new stack of X509 (up-referenced) from the list of Certs at index i (may be nil). */
static STACK_OF(X509) *cert_stack(lua_State *L, t2t_scope *sc, int i) {
    STACK_OF(X509) *sk = t2t_scope_add(sc, sk_X509_new_null(), free_x509_stack);
    if (sk == NULL || lua_isnoneornil(L, i)) return sk;
    luaL_checktype(L, i, LUA_TTABLE);
    for (lua_Integer j = 1; j <= luaL_len(L, i); j++) {
        lua_rawgeti(L, i, j);
        X509 *x = cert_check(L, lua_gettop(L));
        lua_pop(L, 1);
        if (!X509_add_cert(sk, x, X509_ADD_FLAG_UP_REF)) return NULL;
    }
    return sk;
}

/* verify_cert(cert, trusted {Cert...} [, opts {untrusted = {Cert...}, time = epoch,
 * host = name}]) -> true | nil, err (OpenSSL's verification message) */
static int l_verify_cert(lua_State *L) {
    X509 *x = cert_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 3);
    const char *host = NULL;
    lua_Integer at = -1;
    if (!lua_isnil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "untrusted");
        lua_getfield(L, 3, "host");
        host = luaL_optstring(L, -1, NULL);
        lua_getfield(L, 3, "time");
        at = luaL_optinteger(L, -1, -1);
        lua_pop(L, 1);
    } else {
        lua_pushnil(L);
        lua_pushnil(L);
    }
    int untrusted = 4;
    t2t_scope *sc = t2t_scope_new(L);
    ERR_clear_error();
    X509_STORE *st = t2t_scope_add(sc, X509_STORE_new(), free_store);
    STACK_OF(X509) *chain = cert_stack(L, sc, untrusted);
    X509_STORE_CTX *ctx = t2t_scope_add(sc, X509_STORE_CTX_new(), free_store_ctx);
    if (st == NULL || chain == NULL || ctx == NULL) goto ossl;
    for (lua_Integer j = 1; j <= luaL_len(L, 2); j++) {
        lua_rawgeti(L, 2, j);
        X509 *t = cert_check(L, lua_gettop(L));
        lua_pop(L, 1);
        if (!X509_STORE_add_cert(st, t)) goto ossl;
    }
    if (!X509_STORE_CTX_init(ctx, st, x, chain)) goto ossl;
    X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(ctx);
    if (at >= 0) X509_VERIFY_PARAM_set_time(vp, (time_t)at);
    if (host && !X509_VERIFY_PARAM_set1_host(vp, host, 0)) goto ossl;
    int ok = X509_verify_cert(ctx) == 1;
    int err = X509_STORE_CTX_get_error(ctx);
    t2t_scope_close(sc);
    ERR_clear_error();
    if (ok) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushfstring(L, "verify_cert: %s", X509_verify_cert_error_string(err));
    return 2;
ossl:
    t2t_scope_close(sc);
    return t2t_fail(L, "verify_cert");
}

/* ---- PKCS#12 ---------------------------------------------------------------------------- */

/* pkcs12_export{key=, cert=, chain={Cert...}, passphrase=, name=, legacy=} -> DER bytes.
 * Default protection is OpenSSL 3's (AES-256-CBC, PBKDF2, SHA-256 MAC); legacy = true uses
 * 3DES for old Windows importers.  No passphrase means the empty one (what Key Vault uses). */
static int l_pkcs12_export(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    t2t_key *k = opt_key_field(L, 1, "key");
    X509 *x = opt_cert_field(L, 1, "cert");
    luaL_argcheck(L, x != NULL, 1, "cert is required");
    luaL_argcheck(L, k == NULL || k->priv, 1, "key must be private");
    lua_getfield(L, 1, "passphrase");
    const char *pass = luaL_optstring(L, -1, "");
    lua_getfield(L, 1, "name");
    const char *name = luaL_optstring(L, -1, NULL);
    lua_getfield(L, 1, "legacy");
    int nid = lua_toboolean(L, -1) ? NID_pbe_WithSHA1And3_Key_TripleDES_CBC : 0;
    lua_getfield(L, 1, "chain");
    int chainidx = lua_gettop(L);
    if (k) {
        int match = X509_check_private_key(x, k->pkey) == 1;
        ERR_clear_error();
        luaL_argcheck(L, match, 1, "key does not match cert");
    }
    t2t_scope *sc = t2t_scope_new(L);
    ERR_clear_error();
    STACK_OF(X509) *chain = cert_stack(L, sc, chainidx);
    PKCS12 *p12 = chain ? t2t_scope_add(sc, PKCS12_create(pass, name, k ? k->pkey : NULL, x,
                                                          chain, nid, nid, 0, 0, 0), free_p12)
                        : NULL;
    BIO *b = p12 ? t2t_scope_add(sc, BIO_new(BIO_s_secmem()), t2t_free_bio) : NULL;
    if (b == NULL || !i2d_PKCS12_bio(b, p12)) {
        t2t_scope_close(sc);
        return t2t_fail(L, "pkcs12_export");
    }
    t2t_push_bio(L, b);
    t2t_scope_close(sc);
    return 1;
}

/* pkcs12_import(der [, passphrase]) -> {key = Key|nil, cert = Cert|nil, chain = {Cert...}}
 * | nil, err.  Retries with OpenSSL's legacy provider (loaded for that parse only) when the
 * file uses RC2-era ciphers. */
static int l_pkcs12_import(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *pass = luaL_optstring(L, 2, "");
    luaL_argcheck(L, n <= LONG_MAX, 1, "too large");
    t2t_scope *sc = t2t_scope_new(L);
    lua_createtable(L, 0, 3);
    t2t_key *k = t2t_key_new(L);
    t2t_cert *c = cert_new(L);
    ERR_clear_error();
    const unsigned char *p = (const unsigned char *)s;
    PKCS12 *p12 = t2t_scope_add(sc, d2i_PKCS12(NULL, &p, (long)n), free_p12);
    if (p12 == NULL) {
        t2t_scope_close(sc);
        return t2t_fail(L, "pkcs12_import: not a PKCS#12 file");
    }
    if (PKCS12_mac_present(p12) && !PKCS12_verify_mac(p12, pass, -1) &&
        !(*pass == '\0' && PKCS12_verify_mac(p12, NULL, 0))) {
        t2t_scope_close(sc);
        ERR_clear_error();
        lua_pushnil(L);
        lua_pushliteral(L, "pkcs12_import: wrong passphrase (MAC verification failed)");
        return 2;
    }
    STACK_OF(X509) *ca = NULL;
    int ok = PKCS12_parse(p12, pass, &k->pkey, &c->x, &ca);
    OSSL_PROVIDER *legacy;
    if (!ok && (legacy = OSSL_PROVIDER_try_load(NULL, "legacy", 1)) != NULL) {
        ERR_clear_error();                    /* RC2-40 certificate bags (old Windows) */
        sk_X509_pop_free(ca, X509_free);
        ca = NULL;
        ok = PKCS12_parse(p12, pass, &k->pkey, &c->x, &ca);
        OSSL_PROVIDER_unload(legacy);         /* loaded only for this parse: no global state */
    }
    t2t_scope_add(sc, ca, free_x509_stack);
    if (!ok) {
        t2t_scope_close(sc);
        t2t_key_close(k);
        cert_close(c);
        return t2t_fail(L, "pkcs12_import");
    }
    if (k->pkey && !t2t_key_supported(k->pkey)) {
        const char *type = EVP_PKEY_get0_type_name(k->pkey);
        lua_pushnil(L);
        lua_pushfstring(L, "pkcs12_import: the key is %s; only RSA and Ed25519 keys are supported",
                        type ? type : "of an unknown type");
        t2t_scope_close(sc);
        t2t_key_close(k);
        cert_close(c);
        return 2;
    }
    k->priv = k->pkey != NULL;
    /* stack: ... table key cert */
    if (c->x) lua_setfield(L, -3, "cert"); else lua_pop(L, 1);
    if (k->pkey) lua_setfield(L, -2, "key"); else lua_pop(L, 1);
    lua_newtable(L);
    for (int i = 1; ca && sk_X509_num(ca) > 0; i++) {
        t2t_cert *cc = cert_new(L);
        cc->x = sk_X509_shift(ca);
        lua_rawseti(L, -2, i);
    }
    lua_setfield(L, -2, "chain");
    t2t_scope_close(sc);
    return 1;
}

static const luaL_Reg cert_methods[] = {
    {"subject", cert_subject},       {"issuer", cert_issuer},
    {"serial", cert_serial},         {"not_before", cert_not_before},
    {"not_after", cert_not_after},   {"san", cert_san},
    {"is_ca", cert_is_ca},           {"fingerprint", cert_fingerprint},
    {"public_key", cert_public_key}, {"matches_key", cert_matches_key},
    {"verify_signature", cert_verify_signature},
    {"pem", cert_pem},               {"der", cert_der},
    {"close", cert_gc},              {NULL, NULL}};

static const luaL_Reg cert_meta[] = {
    {"__gc", cert_gc}, {"__close", cert_gc}, {"__tostring", cert_tostring},
    {"__eq", cert_eq}, {"__index", NULL},    {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"load_cert", l_load_cert},         {"load_certs", l_load_certs},
    {"create_cert", l_create_cert},     {"verify_cert", l_verify_cert},
    {"pkcs12_export", l_pkcs12_export}, {"pkcs12_import", l_pkcs12_import},
    {NULL, NULL}};

int luaopen_t2t_x509(lua_State *L) {
    luaL_requiref(L, "t2t.core.crypto", luaopen_t2t_crypto, 0);   /* the Key metatable */
    lua_pop(L, 1);
    if (luaL_newmetatable(L, T2T_CERT_MT)) {
        luaL_setfuncs(L, cert_meta, 0);
        luaL_newlib(L, cert_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    luaL_getmetatable(L, T2T_CERT_MT);
    lua_getfield(L, -1, "__index");
    lua_setfield(L, -3, "Cert");              /* the method table, for Lua-side additions */
    lua_pop(L, 1);
    return 1;
}
