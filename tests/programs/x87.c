/* long double, which on x86-64 is the x87 80-bit format: arithmetic with 64-bit mantissas,
 * conversions to and from integers and doubles, sqrtl/fabsl/floorl and libm's long double
 * functions, printf with %Lf %Le %Lg %La, strtold, and the precision that double lacks
 * (1 + 2^-60 != 1). A backend without x87 support fails here first. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile long double lv[] = { 0.0L, 1.0L, -2.5L, 0.1L, 3.0L, 1e300L, 1e-300L, 1e4000L, 12345678901234567890.0L,
                                     -0.0L, 1.0L / 3.0L, 18446744073709551615.0L };
#define NL (sizeof lv / sizeof lv[0])

static uint64_t h = 0xcbf29ce484222325ull;
static void mix(uint64_t x) {
    for (int i = 0; i < 8; i++) { h ^= (x >> (8 * i)) & 0xff; h *= 0x100000001b3ull; }
}
static void mixl(long double v) {
    unsigned char b[16] = { 0 };
    memcpy(b, (const void *)&v, 10); /* only the 80 significant bits */
    uint64_t lo, hi = 0;
    memcpy(&lo, b, 8);
    memcpy(&hi, b + 8, 2);
    if (isnan(v)) lo = 0xc000000000000000ull, hi = 0x7fff;
    mix(lo);
    mix(hi);
}

__attribute__((noipa)) static long double ladd(long double a, long double b) { return a + b; }
__attribute__((noipa)) static long double lmul(long double a, long double b) { return a * b; }
__attribute__((noipa)) static long double ldiv_(long double a, long double b) { return a / b; }
__attribute__((noipa)) static int llt(long double a, long double b) { return a < b; }
__attribute__((noipa)) static int64_t l2i(long double a) { return (int64_t)a; }
__attribute__((noipa)) static uint64_t l2u(long double a) { return (uint64_t)a; }
__attribute__((noipa)) static long double i2l(int64_t a) { return (long double)a; }
__attribute__((noipa)) static long double u2l(uint64_t a) { return (long double)a; }
__attribute__((noipa)) static double l2d(long double a) { return (double)a; }
__attribute__((noipa)) static long double d2l(double a) { return (long double)a; }

int main(void) {
    printf("LDBL_MANT_DIG %d LDBL_MAX_EXP %d sizeof %zu\n", LDBL_MANT_DIG, LDBL_MAX_EXP, sizeof(long double));
    long double tiny = ldexpl(1.0L, -60);
    printf("1 + 2^-60 > 1: long double %d, double %d\n", ladd(1.0L, tiny) > 1.0L, (1.0 + (double)tiny) > 1.0);
    printf("%.25Lf\n%.20Le\n%Lg\n%La\n", ldiv_(1.0L, 3.0L), lmul(1e300L, 1e300L), ladd(0.1L, 0.2L), ldiv_(1.0L, 10.0L));
    printf("%Lf %Lf\n", i2l(INT64_MIN), u2l(UINT64_MAX));
    printf("%" PRId64 " %" PRIu64 "\n", l2i(-9223372036854775807.5L), l2u(18446744073709551615.0L));
    printf("%.17g %.21Lg\n", l2d(0.1L), d2l(0.1));
    printf("sqrtl(2) %.21Lg fabsl %Lg floorl %Lg ceill %Lg roundl %Lg\n", sqrtl(2.0L), fabsl(-7.25L), floorl(-2.5L),
           ceill(-2.5L), roundl(2.5L));
    printf("expl(1) %.18Lg logl(10) %.18Lg powl(2,100) %.0Lf\n", expl(1.0L), logl(10.0L), powl(2.0L, 100.0L));
    printf("sinl(1) %.18Lg cosl(1) %.18Lg atan2l %.18Lg\n", sinl(1.0L), cosl(1.0L), atan2l(1.0L, 1.0L) * 4);
    char *end;
    long double s = strtold("1.000000000000000000001e-4931xyz", &end);
    printf("strtold %.25Lg rest [%s]\n", s, end);
    printf("LDBL_MAX %Lg LDBL_MIN %Lg LDBL_EPSILON %Lg\n", LDBL_MAX, LDBL_MIN, LDBL_EPSILON);
    for (unsigned i = 0; i < NL; i++) {
        for (unsigned j = 0; j < NL; j++) {
            mixl(ladd(lv[i], lv[j])); mixl(lmul(lv[i], lv[j])); mixl(ldiv_(lv[i], lv[j])); mix(llt(lv[i], lv[j]));
        }
        long double a = lv[i];
        if (a > -9e18L && a < 9e18L) mix(l2i(a));
        if (a >= 0 && a < 1.8e19L) mix(l2u(a));
        mixl(d2l(l2d(a))); mixl(sqrtl(fabsl(a))); mixl(floorl(a));
    }
    printf("hash %016" PRIx64 "\n", h);
    return 0;
}
