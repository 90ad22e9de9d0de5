/* check.h — a tiny test harness for the C unit tests.  Each test binary prints one line per
 * test, "ok - NAME" or "not ok - NAME", and details on failure; tests/run.sh counts them. */
#ifndef T2T_CHECK_H
#define T2T_CHECK_H
#include <stdio.h>
#include <string.h>

static int check_failures_in_test;
static int check_failed_tests;

#define CHECK(cond) do { if (!(cond)) { \
    printf("#   %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    check_failures_in_test++; } } while (0)

#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) { \
    printf("#   %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
    check_failures_in_test++; } } while (0)

#define RUN(fn) do { check_failures_in_test = 0; fn(); \
    printf("%s - %s: %s\n", check_failures_in_test ? "not ok" : "ok", __FILE__, #fn); \
    if (check_failures_in_test) check_failed_tests++; } while (0)

#define CHECK_DONE() (check_failed_tests ? 1 : 0)
#endif
