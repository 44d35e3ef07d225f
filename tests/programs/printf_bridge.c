/* The printf and scanf families called with variadic arguments of every class (integer
 * registers, XMM registers, the stack, long double in memory), and through va_list wrappers the
 * program writes itself: bridged, each call's arguments must be found by the format's types. */
//! variants: gcc-static gcc-dynamic gcc-bridged
#define _GNU_SOURCE
#include <errno.h>
#include <err.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

static void conversions(void) {
    printf("d=%d i=%i neg=%d o=%o u=%u x=%x X=%X\n", 42, -7, -2147483647 - 1, 0755u, 4000000000u, 0xbeefu, 0xcafeu);
    printf("hh=%hhd h=%hd hhu=%hhu hu=%hu\n", 300, 70000, 511, 65537);
    printf("l=%ld ll=%lld lu=%lu llx=%llx z=%zu zd=%zd j=%jd t=%td\n", -1234567890123L, -9000000000000000000LL,
           18446744073709551615UL, 0x123456789abcdefULL, (size_t)12345, (ssize_t)-5, (intmax_t)-77, (ptrdiff_t)99);
    printf("c=%c%c%c s=%s .3s=%.3s 8s=[%8s] -8s=[%-8s] null-prec=[%.0s]\n", 'a', 'B', '!', "str", "abcdef", "ab", "cd", "x");
    printf("p=%p nil=%p\n", (void *)0x1234, (void *)0);
    printf("f=%f F=%F e=%e E=%E g=%g G=%G\n", 3.14159, 1e15, 6.02214076e23, -1.5e-10, 0.0001234, 1e20);
    printf("a=%a A=%A .2f=%.2f 10.4f=[%10.4f] -10.1f=[%-10.1f] +f=%+f sp=% d #o=%#o #x=%#x 08d=%08d\n", 1.0, -0.5,
           2.675, 3.14159, 2.25, 1.0, 5, 8, 255, -42);
    printf("nan=%f inf=%e -0=%g b=%b B=%#B pct=%%\n", __builtin_nan(""), -1.0 / 0.0, -0.0, 10u, 5u);
    printf("lc=%lc ls=%ls\n", (wint_t)'W', L"wide");
    float fl = 1.25f;
    printf("float promoted=%f %g\n", fl, fl * 2);
}

static void many(void) {
    /* 20 arguments alternating int and double: 5 ints in registers, 8 doubles in XMM, the rest on
     * the stack, interleaved in argument order. */
    int r = printf("%d %.1f %d %.1f %d %.1f %d %.1f %d %.1f %d %.1f %d %.1f %d %.1f %d %.1f %d %.1f|\n",
                   1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7, 7.5, 8, 8.5, 9, 9.5, 10, 10.5);
    printf("returned %d\n", r);
    /* 12 doubles then 12 ints, and long longs and pointers mixed. */
    printf("%g %g %g %g %g %g %g %g %g %g %g %g %d %d %d %d %d %d %d %d %d %d %d %d\n", 0.1, 0.2, 0.3, 0.4, 0.5, 0.6,
           0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
    printf("%lld %s %lld %s %lld %s %lld %s %lld %s\n", 1LL << 40, "a", -(1LL << 41), "b", 3LL, "c", 4LL, "d", 5LL, "e");
}

static void long_doubles(void) {
    long double x = 1.0L / 3.0L, y = -2.5e100L, z = 1e4000L;
    printf("Lf=%Lf Le=%.20Le Lg=%Lg\n", x, y, z);
    /* long double between ints and doubles: memory class, 16-aligned on both sides. */
    printf("%d %Lf %d %.1f %Lf %d %.1f %.3Lf\n", 1, 2.5L, 3, 4.5, 6.25L, 7, 8.5, x);
    char buf[64];
    snprintf(buf, sizeof buf, "%.10Lf|%d", x * 3, 99);
    printf("snprintf Lf: %s\n", buf);
    /* glibc: L on an integer conversion is long long, ll on a floating one long double. */
    printf("Ld=%Ld llf=%.3llf\n", -5LL, 1.5L);
}

static void counts_positions_widths(void) {
    int n1 = 0, n2 = 0;
    signed char hn = 0;
    printf("abc%n defgh%n%hhn|\n", &n1, &n2, &hn);
    printf("n1=%d n2=%d hhn=%d\n", n1, n2, hn);
    printf("pos: %2$s %1$d %3$.2f %1$d %2$s\n", 7, "seven", 7.0);
    printf("pos width: [%1$*2$d] [%3$-*2$s] [%4$.*5$f]\n", 42, 6, "ab", 3.14159, 2);
    printf("star: [%*d] [%-*d] [%.*f] [%*.*e] [%*s]\n", 5, 1, 4, 2, 3, 2.0, 12, 2, 1234.5, -6, "x");
    errno = ENOENT;
    printf("m: %m (%d)\n", 17);
    errno = EACCES;
    printf("m again: [%m]\n");
}

static void to_strings(void) {
    char buf[32];
    int r = snprintf(buf, sizeof buf, "%s-%d-%.2f-%c", "snprintf", 123, 4.567, 'z');
    printf("snprintf: %s (%d)\n", buf, r);
    r = snprintf(buf, 8, "%d %d %d %d", 1111, 2222, 3333, 4444);
    printf("truncated: %s (%d)\n", buf, r);
    r = snprintf(NULL, 0, "%0*d", 50, 1);
    printf("measure: %d\n", r);
    r = sprintf(buf, "%x:%o:%e", 255u, 8u, 1.0);
    printf("sprintf: %s (%d)\n", buf, r);
    char *s = NULL;
    r = asprintf(&s, "%s %d %g %Lg", "asprintf", -1, 2.5, 3.25L);
    printf("asprintf: %s (%d)\n", s ? s : "(null)", r);
    free(s);
    fflush(stdout);
    r = dprintf(1, "dprintf %d %s %.1f\n", 5, "to fd 1", 0.5);
    printf("dprintf returned %d\n", r);
    r = fprintf(stderr, "fprintf to stderr %d %f\n", 1, 2.0);
    printf("fprintf(stderr) returned %d\n", r);
    r = fprintf(stdout, "fprintf %s %d %.3f\n", "stdout", 9, 9.5);
    printf("fprintf(stdout) returned %d\n", r);
    warnx("warnx %d %s", 3, "(stderr)");
}

/* The program's own logging functions: va_start, then the v* functions. */
static int logf_(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vprintf(fmt, ap);
    va_end(ap);
    return r;
}

static int tagged(const char *tag, int level, const char *fmt, ...) {
    char buf[256];
    va_list ap, aq;
    va_start(ap, fmt);
    va_copy(aq, ap);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("[%s:%d] %s (%d)\n", tag, level, buf, n);
    char *s = NULL;
    int m = vasprintf(&s, fmt, aq);
    va_end(aq);
    printf("vasprintf: %s (%d)\n", s ? s : "(null)", m);
    free(s);
    return n;
}

/* Consumes its first argument with va_arg, then hands the rest on: the list is part-way. */
static void skip_first(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int first = va_arg(ap, int);
    double second = va_arg(ap, double);
    printf("skipped %d %.1f: ", first, second);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
}

static void wrappers(void) {
    int r = logf_("vprintf %d %s %.2f %Lf %c\n", 1, "two", 3.0, 4.0L, '5');
    printf("vprintf returned %d\n", r);
    tagged("net", 3, "%s:%d rtt=%.3fms loss=%u%%", "example", 8080, 12.3456, 2u);
    tagged("many", 1, "%d %d %d %d %d %d %d %d %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f %lld", 1, 2, 3, 4, 5,
           6, 7, 8, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, -1LL);
    skip_first("%d %.1f %s %d %d %d %d %.2f\n", 10, 20.5, 30, 40.5, "fifty", 60, 70, 80, 90, 100.25);
    logf_("pos %2$s %1$d\n", 5, "five");
}

static int scan_wrapper(const char *in, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vsscanf(in, fmt, ap);
    va_end(ap);
    return r;
}

static void scanning(void) {
    int i = 0, n = 0;
    long l = 0;
    unsigned u = 0, x = 0;
    double d = 0;
    float f = 0;
    char s[16] = "", c = 0, set[16] = "";
    long double ld = 0;
    short h = 0;
    int r = sscanf("  -42 1234567890123 77 ff 2.5e3 0.75 word Z abcxyz 3.5 -3", "%d %ld %u %x %lf %f %15s %c %15[a-c]%*[xyz] %Lf %hd%n",
                   &i, &l, &u, &x, &d, &f, s, &c, set, &ld, &h, &n);
    printf("sscanf %d: %d %ld %u %x %g %g %s %c %s %Lg %hd n=%d\n", r, i, l, u, x, d, f, s, c, set, ld, h, n);
    int a = 0, b = 0;
    r = sscanf("7 8", "%2$d %1$d", &a, &b);
    printf("positional %d: a=%d b=%d\n", r, a, b);
    r = sscanf("", "%d", &a);
    printf("empty: %d\n", r);
    char word[8] = "";
    r = scan_wrapper("12 ab 3.25 -0.125", "%d %7s %lf %Lf", &a, word, &d, &ld);
    printf("vsscanf %d: %d %s %g %Lg\n", r, a, word, d, ld);
    ld = 9.5L;
    r = sscanf("x", "%Lf", &ld);
    printf("no match %d: %Lg kept\n", r, ld);

    FILE *fp = fopen("in.txt", "w");
    if (!fp) { perror("fopen"); exit(1); }
    fprintf(fp, "100 hello 6.5\n200 world\n");
    fclose(fp);
    fp = fopen("in.txt", "r");
    r = fscanf(fp, "%d %15s %lf", &a, s, &d);
    printf("fscanf %d: %d %s %g\n", r, a, s, d);
    fclose(fp);
    if (!freopen("in.txt", "r", stdin)) { perror("freopen"); exit(1); }
    r = scanf("%d %15s %lf %d %15s", &a, s, &d, &b, set);
    printf("scanf %d: %d %s %g %d %s\n", r, a, s, d, b, set);
    r = scanf("%d", &a);
    printf("scanf at end: %d\n", r);
}

int main(void) {
    conversions();
    many();
    long_doubles();
    counts_positions_widths();
    to_strings();
    wrappers();
    scanning();
    return 0;
}
