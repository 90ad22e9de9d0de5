/* dkim_msg.h — messages and DKIM-Signature fields for core/dkim.c (verify) and core/dkim_sign.c
 * (sign): CRLF normalization, header fields, signature tags (RFC 6376 §3.5), header selection
 * (§5.4.2), b= removal (§3.7) and the canonical body.  Static inline, as dkim_text.h. */
#ifndef T2T_DKIM_MSG_H
#define T2T_DKIM_MSG_H

#include <stdint.h>
#include "dkim_text.h"

#define HNAMES_MAX 128                   /* names in one h= */
#define SIG_B_MAX 1024                   /* decoded b= (RSA 8192 is 1024 bytes) */

/* ---- messages ------------------------------------------------------------------------------ */

struct field { size_t off, len, name_len; };   /* in buf, without the final CRLF */

enum { A_RSA_SHA256, A_ED25519_SHA256 };

struct sig {
    size_t field;                        /* index in the message's fields */
    const char *error;                   /* why it can never pass (permerror) */
    int alg, hrelaxed, brelaxed, has_l;
    unsigned long long l, t, x;
    int has_t, has_x;
    unsigned char bh[32], b[SIG_B_MAX];
    size_t blen, nh;
    struct span h[HNAMES_MAX];           /* into buf */
    struct span d, s, i;                 /* into buf (i: the domain part, or d) */
    struct span shown[10];               /* SIG_SHOWN's tags as written (p == NULL: absent) */
};

/* The tags m:signatures() reports as written, in this order. */
static const char *const SIG_SHOWN[10] = {"a", "c", "d", "s", "i", "l", "t", "x", "q", "h"};

struct message {
    char *buf;                           /* CRLF text; NULL when closed */
    size_t len, body, nf;
    int has_body;
    struct field *f;
    struct sig *sigs;
    int nsigs;
    struct dbuf cb[2];                   /* canonical bodies: simple, relaxed (lazy) */
    int cbdone[2];
};

static inline void msg_free(struct message *m) {
    free(m->buf);
    free(m->f);
    free(m->sigs);
    free(m->cb[0].p);
    free(m->cb[1].p);
    memset(m, 0, sizeof *m);
}

static inline int msg_normalize(struct message *m, const char *raw, size_t n) {
    size_t extra = 0;
    for (size_t i = 0; i < n; i++) if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) extra++;
    if (n + extra < n || !(m->buf = malloc(n + extra + 1))) return 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) m->buf[o++] = '\r';
        m->buf[o++] = raw[i];
    }
    m->buf[o] = 0;
    m->len = o;
    return 1;
}

static inline size_t line_end(const char *b, size_t i, size_t n) {
    while (i < n && !(b[i] == '\r' && i + 1 < n && b[i + 1] == '\n')) i++;
    return i;
}

/* Split the header section into fields; lines without a colon (an mbox "From " line) are
 * skipped.  0 on allocation failure. */
static inline int msg_fields(struct message *m) {
    size_t i = 0, cap = 0;
    const char *b = m->buf;
    m->body = m->len;
    while (i < m->len) {
        if (b[i] == '\r' && i + 1 < m->len && b[i + 1] == '\n') {   /* the empty line */
            m->body = i + 2;
            m->has_body = 1;
            break;
        }
        size_t start = i, e = line_end(b, i, m->len);
        while (e + 2 < m->len && is_wsp((unsigned char)b[e + 2])) e = line_end(b, e + 2, m->len);
        const char *colon = memchr(b + start, ':', line_end(b, start, m->len) - start);
        if (colon) {
            if (m->nf == cap) {
                cap = cap ? cap * 2 : 32;
                struct field *f = realloc(m->f, cap * sizeof *f);
                if (!f) return 0;
                m->f = f;
            }
            m->f[m->nf].off = start;
            m->f[m->nf].len = e - start;
            m->f[m->nf].name_len = (size_t)(colon - (b + start));
            m->nf++;
        }
        i = e + 2;
    }
    return 1;
}

static inline struct span field_name(const struct message *m, size_t k) {
    struct span s = {m->buf + m->f[k].off, m->f[k].name_len};
    while (s.n && is_wsp((unsigned char)s.p[s.n - 1])) s.n--;
    return s;
}

static inline struct span field_value(const struct message *m, size_t k) {
    struct span s = {m->buf + m->f[k].off + m->f[k].name_len + 1, m->f[k].len - m->f[k].name_len - 1};
    return s;
}

/* ---- signatures (RFC 6376 §3.5, §6.1.1) ----------------------------------------------------- */

static inline int parse_uint(struct span v, unsigned long long *out) {
    if (!v.n || v.n > 19) return 0;
    unsigned long long x = 0;
    for (size_t k = 0; k < v.n; k++) {
        if (!is_digit((unsigned char)v.p[k])) return 0;
        x = x * 10 + (unsigned)(v.p[k] - '0');
    }
    *out = x;
    return 1;
}

/* A domain name as DKIM's d= and i= allow: labels of letters, digits, '-' and '_'. */
static inline int domain_ok(struct span d) {
    if (!d.n || d.n > 253 || d.p[0] == '.' || d.p[d.n - 1] == '.') return 0;
    for (size_t k = 0; k < d.n; k++) {
        int c = (unsigned char)d.p[k];
        if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_') return 0;
        if (c == '.' && d.p[k + 1] == '.') return 0;
    }
    return 1;
}

/* sub equals dom or ends with "." dom (case-insensitive). */
static inline int domain_within(struct span sub, struct span dom) {
    if (sub.n < dom.n) return 0;
    struct span tail = {sub.p + sub.n - dom.n, dom.n};
    char tmp[256];
    if (dom.n >= sizeof tmp) return 0;
    memcpy(tmp, dom.p, dom.n);
    tmp[dom.n] = 0;
    if (!span_ieq(tail, tmp)) return 0;
    return sub.n == dom.n || sub.p[sub.n - dom.n - 1] == '.';
}

static inline const char *sig_canon(struct sig *g, const struct span *c) {
    g->hrelaxed = g->brelaxed = 0;
    if (!c) return NULL;
    const char *slash = memchr(c->p, '/', c->n);
    struct span hc = {c->p, slash ? (size_t)(slash - c->p) : c->n};
    struct span bc = slash ? (struct span){slash + 1, c->n - hc.n - 1} : (struct span){"simple", 6};
    if (span_eq(hc, "relaxed")) g->hrelaxed = 1; else if (!span_eq(hc, "simple")) return "unknown header canonicalization";
    if (span_eq(bc, "relaxed")) g->brelaxed = 1; else if (!span_eq(bc, "simple")) return "unknown body canonicalization";
    return NULL;
}

static inline const char *sig_hlist(struct sig *g, struct span h) {
    int from = 0;
    size_t i = 0;
    g->nh = 0;
    while (i <= h.n) {
        size_t j = i;
        while (j < h.n && h.p[j] != ':') j++;
        struct span name = trim_fws(h.p + i, j - i);
        if (!name.n) return "empty name in h=";
        if (g->nh == HNAMES_MAX) return "too many names in h=";
        g->h[g->nh++] = name;
        if (span_ieq(name, "from")) from = 1;
        i = j + 1;
    }
    return from ? NULL : "h= does not sign From (RFC 6376 §5.4)";
}

static inline const char *sig_algorithm(struct sig *g, const struct span *a) {
    if (span_eq(*a, "rsa-sha256")) g->alg = A_RSA_SHA256;
    else if (span_eq(*a, "ed25519-sha256")) g->alg = A_ED25519_SHA256;
    else if (span_eq(*a, "rsa-sha1")) return "rsa-sha1 must not be used (RFC 8301 §3.1)";
    else return "unknown signing algorithm";
    return NULL;
}

static inline const char *sig_times(struct sig *g, const struct taglist *tl) {
    const struct span *v;
    if ((v = tag_get(tl, "l")) && !(g->has_l = parse_uint(*v, &g->l))) return "bad l=";
    if ((v = tag_get(tl, "t")) && !(g->has_t = parse_uint(*v, &g->t))) return "bad t=";
    if ((v = tag_get(tl, "x")) && !(g->has_x = parse_uint(*v, &g->x))) return "bad x=";
    if (g->has_t && g->has_x && g->x <= g->t) return "x= is not after t=";
    if ((v = tag_get(tl, "q"))) {
        struct span q = *v;
        int ok = 0;
        for (size_t i = 0; i <= q.n;) {
            size_t j = i;
            while (j < q.n && q.p[j] != ':') j++;
            if (span_eq(trim_fws(q.p + i, j - i), "dns/txt")) ok = 1;
            i = j + 1;
        }
        if (!ok) return "no supported query method in q=";
    }
    return NULL;
}

static inline const char *sig_identity(struct sig *g, const struct taglist *tl) {
    const struct span *v = tag_get(tl, "i");
    g->i = g->d;
    if (!v) return NULL;
    const char *at = NULL;
    for (size_t k = v->n; k-- > 0;) if (v->p[k] == '@') { at = v->p + k; break; }
    if (!at) return "i= has no '@'";
    struct span dom = {at + 1, (size_t)(v->p + v->n - at - 1)};
    if (!domain_ok(dom) || !domain_within(dom, g->d)) return "i= is not d= or a subdomain of it";
    g->i = dom;
    return NULL;
}

/* Validate one DKIM-Signature's tags into g.  NULL or the permerror reason. */
static inline const char *sig_parse(struct sig *g, const struct span value) {
    struct taglist tl;
    const char *why = taglist_parse(value.p, value.n, &tl, 0);
    if (why) return why;
    for (int k = 0; k < 10; k++) {
        const struct span *t = tag_get(&tl, SIG_SHOWN[k]);
        if (t) g->shown[k] = *t;
    }
    static const char *const need[] = {"v", "a", "b", "bh", "d", "h", "s", NULL};
    for (int k = 0; need[k]; k++)
        if (!tag_get(&tl, need[k])) return "a required tag (v a b bh d h s) is missing";
    if (!span_eq(*tag_get(&tl, "v"), "1")) return "v= is not 1";
    if ((why = sig_algorithm(g, tag_get(&tl, "a")))) return why;
    if ((why = sig_canon(g, tag_get(&tl, "c")))) return why;
    g->d = *tag_get(&tl, "d");
    g->s = *tag_get(&tl, "s");
    if (!domain_ok(g->d)) return "d= is not a domain name";
    if (!domain_ok(g->s)) return "s= is not a selector";
    if ((why = sig_hlist(g, *tag_get(&tl, "h")))) return why;
    if ((why = sig_identity(g, &tl))) return why;
    if ((why = sig_times(g, &tl))) return why;
    const struct span *bh = tag_get(&tl, "bh"), *b = tag_get(&tl, "b");
    if (b64_decode(bh->p, bh->n, g->bh, sizeof g->bh) != 32) return "bh= is not a base64 SHA-256";
    long bl = b64_decode(b->p, b->n, g->b, sizeof g->b);
    if (bl <= 0) return "b= is not base64";
    g->blen = (size_t)bl;
    return NULL;
}

/* Parse every DKIM-Signature field of m (top to bottom).  0 on allocation failure. */
static inline int msg_sigs(struct message *m) {
    size_t n = 0;
    for (size_t k = 0; k < m->nf; k++) if (span_ieq(field_name(m, k), "dkim-signature")) n++;
    if (!n) return 1;
    if (!(m->sigs = calloc(n, sizeof *m->sigs))) return 0;
    for (size_t k = 0; k < m->nf; k++) {
        if (!span_ieq(field_name(m, k), "dkim-signature")) continue;
        struct sig *g = &m->sigs[m->nsigs++];
        g->field = k;
        g->error = sig_parse(g, field_value(m, k));
    }
    return 1;
}



/* Fill m from raw (m zeroed by the caller).  0 on allocation failure (m is then freed). */
static inline int msg_init(struct message *m, const char *raw, size_t n) {
    m->cb[0].ok = m->cb[1].ok = 1;
    if (msg_normalize(m, raw, n) && msg_fields(m) && msg_sigs(m)) return 1;
    msg_free(m);
    return 0;
}

static inline int span_ieq_span(struct span a, struct span b) {
    if (a.n != b.n) return 0;
    for (size_t i = 0; i < a.n; i++) if (lc((unsigned char)a.p[i]) != lc((unsigned char)b.p[i])) return 0;
    return 1;
}

/* Append the fields h= names, each the bottom-most not yet used (§5.4.2); a name with no
 * instance left adds nothing (oversigning).  skip: the signature's own field, or SIZE_MAX. */
static inline int add_selected(const struct message *m, const struct span *h, size_t nh, size_t skip,
                        int relaxed, struct dbuf *o) {
    unsigned char *used = calloc(m->nf ? m->nf : 1, 1);
    if (!used) return 0;
    if (skip < m->nf) used[skip] = 1;
    for (size_t k = 0; k < nh; k++) {
        for (size_t j = m->nf; j-- > 0;) {
            if (used[j] || !span_ieq_span(field_name(m, j), h[k])) continue;
            used[j] = 1;
            const char *f = m->buf + m->f[j].off;
            if (relaxed) canon_header_relaxed(o, f, m->f[j].len, m->f[j].name_len);
            else db_add(o, f, m->f[j].len);
            db_add(o, "\r\n", 2);
            break;
        }
    }
    free(used);
    return o->ok;
}

/* Append field f[0..n) with the value of its b= tag removed (leading FWS too, §3.7). */
static inline void add_without_b(struct dbuf *o, const char *f, size_t n, size_t name_len) {
    size_t i = name_len + 1;
    while (i <= n) {
        size_t j = i;
        while (j < n && f[j] != ';') j++;
        const char *eq = memchr(f + i, '=', j - i);
        if (eq && span_eq(trim_fws(f + i, (size_t)(eq - (f + i))), "b")) {
            struct span v = trim_fws(eq + 1, (size_t)(f + j - eq - 1));
            size_t cut = v.n ? (size_t)(v.p + v.n - f) : (size_t)(eq + 1 - f);
            db_add(o, f, (size_t)(eq + 1 - f));
            db_add(o, f + cut, n - cut);
            return;
        }
        i = j + 1;
    }
    db_add(o, f, n);
}

static inline void add_sig_field(struct dbuf *o, const char *f, size_t n, size_t name_len, int relaxed) {
    if (relaxed) canon_header_relaxed(o, f, n, name_len);
    else db_add(o, f, n);
}

static inline const struct dbuf *canonical_body(struct message *m, int relaxed) {
    if (!m->cbdone[relaxed]) {
        canon_body(&m->cb[relaxed], m->buf + m->body, m->len - m->body, relaxed);
        m->cbdone[relaxed] = 1;
    }
    return m->cb[relaxed].ok ? &m->cb[relaxed] : NULL;
}

/* RSA PKCS#1 v1.5 over SHA-256 of the data; Ed25519 over the SHA-256 digest (RFC 8463 §3).
 * 1 verified, 0 not, -1 out of memory. */
#endif
