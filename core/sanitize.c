/*
 * sanitize.c - defaults for the sanitizer runtime in SANITIZE= builds.
 *
 * GCC up to 13 (Debian 12 has 12) ships a sanitizer runtime whose __tls_get_addr
 * interceptor takes a dynamic TLS block for a pre-2.25 glibc one whenever the block
 * happens to start 16 bytes into a page, and then reads two words before it as that
 * block's bounds. Since glibc 2.25 there is no such header, so LeakSanitizer's
 * stop-the-world tracer dereferences garbage at exit and dies with "Tracer caught
 * signal 11" and no report. Our plugins (libcurl, OpenSSL, libmicrohttpd) are
 * dlopen'ed and use dynamic TLS, so about one run in a hundred hit it: measured 2 of
 * 226 sanitized setup-target runs on a loaded machine, 0 of 361 with this option.
 * Turning the interceptor off only stops LSan scanning dynamic TLS blocks as roots;
 * the valgrind test still covers leaks through those. LLVM fixed the check in 17.
 *
 * Built into every binary (t2t and the C tests) but compiled empty without ASan.
 */
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);

__attribute__((visibility("default"), used))
const char *__asan_default_options(void)
{
    return "intercept_tls_get_addr=0";
}
#else
typedef int t2t_no_sanitizer; /* ISO C wants a non-empty file */
#endif
