/* dkim_text.h — the text side of DKIM for core/dkim.c ("t2t.core.dkim"): spans, a growable
 * buffer, base64 with whitespace, tag-lists (RFC 6376 §3.2) and canonicalization (§3.4).
 * Static inline, like crypto_priv.h: only luaopen_* is exported; fuzz targets may include it. */
#ifndef T2T_DKIM_TEXT_H
#define T2T_DKIM_TEXT_H

#include <stdlib.h>
#include <string.h>

#define TAGS_MAX 64

/* ---- text ------------------------------------------------------------------------------- */

struct span { const char *p; size_t n; };

static inline int is_wsp(int c) { return c == ' ' || c == '\t'; }
static inline int is_fws(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
static inline int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static inline int is_digit(int c) { return c >= '0' && c <= '9'; }
static inline int lc(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static inline struct span trim_fws(const char *p, size_t n) {
    while (n && is_fws((unsigned char)p[0])) p++, n--;
    while (n && is_fws((unsigned char)p[n - 1])) n--;
    struct span s = {p, n};
    return s;
}

static inline int span_ieq(struct span a, const char *b) {
    size_t n = strlen(b);
    if (a.n != n) return 0;
    for (size_t i = 0; i < n; i++) if (lc((unsigned char)a.p[i]) != lc((unsigned char)b[i])) return 0;
    return 1;
}

static inline int span_eq(struct span a, const char *b) {
    return a.n == strlen(b) && memcmp(a.p, b, a.n) == 0;
}

/* A growable byte buffer (malloc); ok turns 0 on allocation failure and stays 0. */
struct dbuf { char *p; size_t n, cap; int ok; };

static inline void db_add(struct dbuf *b, const void *p, size_t n) {
    if (!b->ok || n == 0) return;        /* nothing to add (and NULL + 0 is undefined in C) */
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) { b->ok = 0; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static inline void db_addc(struct dbuf *b, char c) { db_add(b, &c, 1); }
static inline void db_adds(struct dbuf *b, const char *s) { db_add(b, s, strlen(s)); }

/* Base64 with whitespace ignored (RFC 6376 §3.5 b=, bh=, p=).  Returns the length, or -1. */
static inline long b64_decode(const char *s, size_t n, unsigned char *out, size_t cap) {
    unsigned v = 0;
    int bits = 0, pad = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i], d;
        if (is_fws(c)) continue;
        if (c == '=') { pad++; continue; }
        if (pad) return -1;              /* data after padding */
        if (c >= 'A' && c <= 'Z') d = c - 'A';
        else if (c >= 'a' && c <= 'z') d = c - 'a' + 26;
        else if (is_digit(c)) d = c - '0' + 52;
        else if (c == '+') d = 62;
        else if (c == '/') d = 63;
        else return -1;
        v = (v << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) return -1;
            out[o++] = (unsigned char)(v >> bits);
            v &= (1u << bits) - 1;
        }
    }
    if (pad > 2 || (bits >= 6)) return -1;
    return (long)o;
}

/* ---- tag-lists (RFC 6376 §3.2) ------------------------------------------------------------ */

struct tag { struct span name, value; };
struct taglist { struct tag t[TAGS_MAX]; int n; };

static inline const char *tag_name_check(struct span name) {
    if (!name.n || !is_alpha((unsigned char)name.p[0])) return "a tag name must start with a letter";
    for (size_t k = 1; k < name.n; k++) {
        int c = (unsigned char)name.p[k];
        if (!is_alpha(c) && !is_digit(c) && c != '_') return "bad character in a tag name";
    }
    return NULL;
}

/* One tag-spec [FWS] name [FWS] "=" [FWS] value [FWS] into tl.  NULL or why not. */
static inline const char *tag_add(struct taglist *tl, struct span seg, int lenient) {
    const char *eq = memchr(seg.p, '=', seg.n);
    if (!eq) return "a tag without '='";
    struct span name = trim_fws(seg.p, (size_t)(eq - seg.p));
    struct span value = trim_fws(eq + 1, (size_t)(seg.p + seg.n - eq - 1));
    const char *why = tag_name_check(name);
    if (why) return why;
    for (size_t k = 0; k < value.n; k++) {
        int c = (unsigned char)value.p[k];
        if (is_fws(c)) continue;
        if (c < 0x21 || c == 0x7f || (c >= 0x80 && !lenient)) return "bad character in a tag value";
    }
    for (int m = 0; m < tl->n; m++)
        if (tl->t[m].name.n == name.n && memcmp(tl->t[m].name.p, name.p, name.n) == 0)
            return "duplicate tag";
    if (tl->n == TAGS_MAX) return "too many tags";
    tl->t[tl->n].name = name;
    tl->t[tl->n].value = value;
    tl->n++;
    return NULL;
}

/* tag-list = tag-spec *(";" tag-spec) [";"].  lenient: empty specs anywhere and 8-bit bytes
 * (hand-written DMARC records).  NULL or why not. */
static inline const char *taglist_parse(const char *s, size_t n, struct taglist *tl, int lenient) {
    tl->n = 0;
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < n && s[j] != ';') j++;
        struct span seg = trim_fws(s + i, j - i);
        if (seg.n == 0) {
            if (j < n && !lenient) return "empty tag-spec";
        } else {
            const char *why = tag_add(tl, seg, lenient);
            if (why) return why;
        }
        if (j >= n) break;
        i = j + 1;
    }
    return NULL;
}

static inline const struct span *tag_get(const struct taglist *tl, const char *name) {
    for (int i = 0; i < tl->n; i++) if (span_eq(tl->t[i].name, name)) return &tl->t[i].value;
    return NULL;
}

/* ---- canonicalization (RFC 6376 §3.4) ------------------------------------------------------ */

/* relaxed header: lower-case name, unfold, WSP runs to one SP, no WSP around the colon or at
 * the end.  name_len = bytes before the colon.  No CRLF added. */
static inline void canon_header_relaxed(struct dbuf *o, const char *f, size_t n, size_t name_len) {
    size_t nl = name_len;
    while (nl && is_wsp((unsigned char)f[nl - 1])) nl--;
    for (size_t i = 0; i < nl; i++) db_addc(o, (char)lc((unsigned char)f[i]));
    db_addc(o, ':');
    int space = 0, any = 0;
    for (size_t i = name_len + 1; i < n; i++) {
        int c = (unsigned char)f[i];
        if (c == '\r' && i + 1 < n && f[i + 1] == '\n') { i++; continue; }
        if (is_wsp(c)) { space = 1; continue; }
        if (space && any) db_addc(o, ' ');
        db_addc(o, (char)c);
        space = 0;
        any = 1;
    }
}

/* The canonical body of b[0..n) (all of it: l= is applied by the caller).  A last line without
 * CRLF keeps its (compressed) trailing whitespace before the CRLF relaxed adds: §3.4.4 strips
 * whitespace "at the end of lines", and dkimpy and OpenDKIM both read an unterminated remainder
 * as not yet a line (the differential test found it; SMTP bodies always end in CRLF anyway). */
static inline void canon_body(struct dbuf *o, const char *b, size_t n, int relaxed) {
    size_t keep = 0, i = 0;              /* keep: output length up to the last non-empty line */
    while (i < n) {
        size_t e = i;
        while (e < n && !(b[e] == '\r' && e + 1 < n && b[e + 1] == '\n')) e++;
        size_t start = o->n;
        if (relaxed) {
            int space = 0;
            for (size_t k = i; k < e; k++) {
                int c = (unsigned char)b[k];
                if (is_wsp(c)) { space = 1; continue; }
                if (space) db_addc(o, ' ');
                db_addc(o, (char)c);
                space = 0;
            }
            if (space && e >= n) db_addc(o, ' ');
        } else {
            db_add(o, b + i, e - i);
        }
        int empty = o->n == start;
        db_add(o, "\r\n", 2);
        if (!empty) keep = o->n;
        i = e + 2;
    }
    o->n = keep;
    if (!relaxed && o->n == 0) db_add(o, "\r\n", 2);   /* simple: an empty body is one CRLF */
}

#endif
