/* Floating point: float/double arithmetic, int<->float conversions at the edges, sqrt, fused
 * and rounding cases, printf of doubles with %f %e %g %a (including ties and subnormals) and
 * strtod. Inputs go through a volatile table so the operations run at run time. */
#include <math.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile double dv[] = {
    0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 2.5, 3.5, -2.5, 1e300, -1e-300, 4.9e-324, 2.2250738585072014e-308,
    1.7976931348623157e308, 123456789.125, 9007199254740993.0, -9223372036854775808.0, 3.141592653589793,
    2.718281828459045, 1e16, 0.3, 1.0 / 3.0, 6.02214076e23, 1.5e-5,
};
#define ND (sizeof dv / sizeof dv[0])
static volatile float fv[] = { 0.0f, 1.0f, -1.5f, 0.1f, 3.4028235e38f, 1.17549435e-38f, 1e-45f, 16777217.0f, 2.5f, -7.75f };
#define NF (sizeof fv / sizeof fv[0])

static uint64_t h = 0xcbf29ce484222325ull;
static void mix(uint64_t x) {
    for (int i = 0; i < 8; i++) { h ^= (x >> (8 * i)) & 0xff; h *= 0x100000001b3ull; }
}
static uint64_t dbits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
/* NaN payloads and signs are not the same on every ISA; hash NaN as one value. */
static void mixd(double d) { mix(isnan(d) ? 0x7ff8000000000000ull : dbits(d)); }
static void mixf(float f) { mix(isnan(f) ? 0x7fc00000u : fbits(f)); }

__attribute__((noipa)) static double dadd(double a, double b) { return a + b; }
__attribute__((noipa)) static double dsub(double a, double b) { return a - b; }
__attribute__((noipa)) static double dmul(double a, double b) { return a * b; }
__attribute__((noipa)) static double ddiv(double a, double b) { return a / b; }
__attribute__((noipa)) static float fadd(float a, float b) { return a + b; }
__attribute__((noipa)) static float fmul(float a, float b) { return a * b; }
__attribute__((noipa)) static float fdiv(float a, float b) { return a / b; }
__attribute__((noipa)) static int dlt(double a, double b) { return a < b; }
__attribute__((noipa)) static int deq(double a, double b) { return a == b; }
__attribute__((noipa)) static int dunord(double a, double b) { return __builtin_isunordered(a, b); }
__attribute__((noipa)) static int64_t d2i64(double a) { return (int64_t)a; }
__attribute__((noipa)) static int32_t d2i32(double a) { return (int32_t)a; }
__attribute__((noipa)) static uint64_t d2u64(double a) { return (uint64_t)a; }
__attribute__((noipa)) static uint32_t f2u32(float a) { return (uint32_t)a; }
__attribute__((noipa)) static double i2d(int64_t a) { return (double)a; }
__attribute__((noipa)) static double u2d(uint64_t a) { return (double)a; }
__attribute__((noipa)) static float i2f(int32_t a) { return (float)a; }
__attribute__((noipa)) static float u2f(uint64_t a) { return (float)a; }
__attribute__((noipa)) static float d2f(double a) { return (float)a; }
__attribute__((noipa)) static double f2d(float a) { return (double)a; }
__attribute__((noipa)) static double dsqrt(double a) { return sqrt(a); }
__attribute__((noipa)) static float fsqrt(float a) { return sqrtf(a); }
__attribute__((noipa)) static double dmin(double a, double b) { return a < b ? a : b; }
__attribute__((noipa)) static double dabs(double a) { return fabs(a); }
__attribute__((noipa)) static double dneg(double a) { return -a; }

static int in_i64(double d) { return d >= -9223372036854775808.0 && d < 9223372036854775808.0; }
static int in_i32(double d) { return d > -2147483649.0 && d < 2147483648.0; }
static int in_u64(double d) { return d > -1.0 && d < 18446744073709551616.0; }

int main(void) {
    printf("%.17g %.17g %.17g %.17g\n", dadd(0.1, 0.2), dsub(1.0, 0.9), dmul(1.1, 1.1), ddiv(1.0, 3.0));
    printf("%.9g %.9g %.9g\n", fadd(0.1f, 0.2f), fmul(1.1f, 1.1f), fdiv(1.0f, 3.0f));
    printf("%d %d %d %d\n", dlt(1.0, 2.0), deq(0.0, -0.0), dunord(NAN, 1.0), dlt(NAN, 1.0));
    printf("%" PRId64 " %d %" PRIu64 " %u\n", d2i64(-2.9), d2i32(2147483647.9), d2u64(1.8446744073709550e19), f2u32(4294967040.0f));
    printf("%.17g %.17g %.9g %.9g\n", i2d(INT64_MAX), u2d(UINT64_MAX), i2f(16777217), u2f(UINT64_MAX));
    printf("%.9g %.17g\n", d2f(1e-46), f2d(0.1f));
    printf("%.17g %.17g %.9g\n", dsqrt(2.0), dsqrt(1e-310), fsqrt(2.0f));
    printf("%g %g %g\n", dmin(-0.0, 0.0), dabs(-3.5), dneg(0.0));
    printf("inf %f %e %g nan-class %d\n", ddiv(1.0, 0.0), ddiv(-1.0, 0.0), dmul(1e300, 1e300), isnan(dsub(INFINITY, INFINITY)));

    /* printf rounding: ties at every precision, %a, subnormals, large and small exponents. */
    double pv[] = { 0.5, 1.5, 2.5, 0.125, 0.375, 1.005, 2.675, 1e-5, 123456.789, 1e21, 1e22, 5e-324,
                    2.2250738585072014e-308, 1.7976931348623157e308, 0.1, -0.0, 9.5, 99.95, 1e100 };
    for (unsigned i = 0; i < sizeof pv / sizeof pv[0]; i++) {
        volatile double v = pv[i];
        printf("[%f] [%.0f] [%.2f] [%e] [%.3e] [%g] [%.10g] [%a] [%.3a] [%+.1f] [%12.4f] [%-12.2e|]\n",
               v, v, v, v, v, v, v, v, v, v, v, v);
    }
    printf("[%5.1f] [%05.1f] [%#.0f] [%#g] [%G] [%E] [%A]\n", 3.14159, -2.5, 3.0, 1.0, 1e-10, 12345.678, 255.5);

    /* strtod: correctly rounded parsing, hex floats, infinities, end pointer. */
    const char *ss[] = { "3.14159", "1e308", "1e309", "-1e-400", "0x1.8p3", "0x1p-1074", "inf", "-Infinity",
                         "2.2250738585072011e-308", "9007199254740993", "0.1e1x", "  +12.5e-1 tail",
                         "4.9406564584124654e-324", "1.7976931348623158e308", "123456789012345678901234567890",
                         "0.000000000000000000000000000000000000001", "1.00000000000000011102230246251565404236316680908203125" };
    for (unsigned i = 0; i < sizeof ss / sizeof ss[0]; i++) {
        char *end;
        double d = strtod(ss[i], &end);
        printf("strtod(\"%s\") = %.17g bits %016" PRIx64 " rest \"%s\"\n", ss[i], d, dbits(d), end);
    }
    printf("strtof %.9g atof %.17g\n", strtof("0.1", NULL), atof("-2.5e-3"));

    /* Every pair through every operation, folded into a hash of the bit patterns. */
    for (unsigned i = 0; i < ND; i++) {
        for (unsigned j = 0; j < ND; j++) {
            double a = dv[i], b = dv[j];
            mixd(dadd(a, b)); mixd(dsub(a, b)); mixd(dmul(a, b)); mixd(ddiv(a, b));
            mix(dlt(a, b)); mix(deq(a, b)); mix(dunord(a, b)); mixd(dmin(a, b));
        }
        double a = dv[i];
        if (in_i64(a)) mix(d2i64(a));
        if (in_i32(a)) mix(d2i32(a));
        if (in_u64(a)) mix(d2u64(a));
        mixd(i2d((int64_t)dbits(a))); mixd(u2d(dbits(a))); mixf(d2f(a)); mixd(dabs(a)); mixd(dneg(a));
        if (a >= 0) mixd(dsqrt(a));
        mixd(floor(a)); mixd(ceil(a)); mixd(trunc(a)); mixd(round(a)); mixd(rint(a));
        mix(lrint(in_i64(a) ? a : 0.0));
    }
    for (unsigned i = 0; i < NF; i++) {
        for (unsigned j = 0; j < NF; j++) { mixf(fadd(fv[i], fv[j])); mixf(fmul(fv[i], fv[j])); mixf(fdiv(fv[i], fv[j])); }
        mixd(f2d(fv[i])); mixf(fsqrt(fv[i] < 0 ? -fv[i] : fv[i])); mixf(i2f((int32_t)fbits(fv[i]))); mixf(u2f(fbits(fv[i])));
        if (fv[i] >= 0 && fv[i] < 4294967296.0f) mix(f2u32(fv[i]));
    }
    printf("hash %016" PRIx64 "\n", h);
    return 0;
}
