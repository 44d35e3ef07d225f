/* Integer arithmetic at every width: wrapping, signed/unsigned division, shifts, rotates,
 * 128-bit multiplication, bit-counting builtins and byte swaps. Operands come through a
 * volatile table and noipa functions so the compiler cannot fold the operations away. */
#include <stdint.h>
#include <stdio.h>
#include <inttypes.h>

static volatile uint64_t vals[] = {
    0, 1, 2, 3, 7, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x12345678,
    0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ull, 0x123456789abcdef0ull,
    0x7fffffffffffffffull, 0x8000000000000000ull, 0xfffffffffffffffeull, 0xffffffffffffffffull,
    0xdeadbeefcafebabeull, 41, 1000000007, 0x5555555555555555ull,
};
#define NV (sizeof vals / sizeof vals[0])

static uint64_t h = 0xcbf29ce484222325ull;
static void mix(uint64_t x) {
    for (int i = 0; i < 8; i++) { h ^= (x >> (8 * i)) & 0xff; h *= 0x100000001b3ull; }
}

__attribute__((noipa)) static uint8_t add8(uint8_t a, uint8_t b) { return a + b; }
__attribute__((noipa)) static uint16_t mul16(uint16_t a, uint16_t b) { return a * b; }
__attribute__((noipa)) static uint32_t sub32(uint32_t a, uint32_t b) { return a - b; }
__attribute__((noipa)) static uint64_t mul64(uint64_t a, uint64_t b) { return a * b; }
__attribute__((noipa)) static int8_t sdiv8(int8_t a, int8_t b) { return a / b; }
__attribute__((noipa)) static int16_t srem16(int16_t a, int16_t b) { return a % b; }
__attribute__((noipa)) static int32_t sdiv32(int32_t a, int32_t b) { return a / b; }
__attribute__((noipa)) static int32_t srem32(int32_t a, int32_t b) { return a % b; }
__attribute__((noipa)) static int64_t sdiv64(int64_t a, int64_t b) { return a / b; }
__attribute__((noipa)) static int64_t srem64(int64_t a, int64_t b) { return a % b; }
__attribute__((noipa)) static uint8_t udiv8(uint8_t a, uint8_t b) { return a / b; }
__attribute__((noipa)) static uint32_t udiv32(uint32_t a, uint32_t b) { return a / b; }
__attribute__((noipa)) static uint32_t urem32(uint32_t a, uint32_t b) { return a % b; }
__attribute__((noipa)) static uint64_t udiv64(uint64_t a, uint64_t b) { return a / b; }
__attribute__((noipa)) static uint64_t urem64(uint64_t a, uint64_t b) { return a % b; }
__attribute__((noipa)) static uint64_t shl64(uint64_t a, unsigned s) { return a << (s & 63); }
__attribute__((noipa)) static uint64_t shr64(uint64_t a, unsigned s) { return a >> (s & 63); }
__attribute__((noipa)) static int64_t sar64(int64_t a, unsigned s) { return a >> (s & 63); }
__attribute__((noipa)) static uint32_t shl32(uint32_t a, unsigned s) { return a << (s & 31); }
__attribute__((noipa)) static int32_t sar32(int32_t a, unsigned s) { return a >> (s & 31); }
__attribute__((noipa)) static uint16_t shr16(uint16_t a, unsigned s) { return a >> (s & 15); }
__attribute__((noipa)) static uint64_t rol64(uint64_t a, unsigned s) { s &= 63; return (a << s) | (a >> ((64 - s) & 63)); }
__attribute__((noipa)) static uint32_t ror32(uint32_t a, unsigned s) { s &= 31; return (a >> s) | (a << ((32 - s) & 31)); }
__attribute__((noipa)) static uint16_t rol16(uint16_t a, unsigned s) { s &= 15; return (uint16_t)((a << s) | (a >> ((16 - s) & 15))); }
__attribute__((noipa)) static uint8_t ror8(uint8_t a, unsigned s) { s &= 7; return (uint8_t)((a >> s) | (a << ((8 - s) & 7))); }
__attribute__((noipa)) static unsigned __int128 umul128(uint64_t a, uint64_t b) { return (unsigned __int128)a * b; }
__attribute__((noipa)) static __int128 smul128(int64_t a, int64_t b) { return (__int128)a * b; }
__attribute__((noipa)) static unsigned __int128 udiv128(unsigned __int128 a, unsigned __int128 b) { return a / b; }
__attribute__((noipa)) static int64_t sext8(uint64_t a) { return (int8_t)a; }
__attribute__((noipa)) static int64_t sext16(uint64_t a) { return (int16_t)a; }
__attribute__((noipa)) static int64_t sext32(uint64_t a) { return (int32_t)a; }
__attribute__((noipa)) static uint64_t zext32(uint64_t a) { return (uint32_t)a; }
__attribute__((noipa)) static int cmp_s64(int64_t a, int64_t b) { return (a < b) * 4 + (a == b) * 2 + (a > b); }
__attribute__((noipa)) static int cmp_u64(uint64_t a, uint64_t b) { return (a < b) * 4 + (a == b) * 2 + (a > b); }
__attribute__((noipa)) static int cmp_s8(int8_t a, int8_t b) { return (a < b) * 4 + (a == b) * 2 + (a > b); }
__attribute__((noipa)) static uint64_t addc(uint64_t a, uint64_t b, uint64_t *carry) {
    uint64_t r; *carry = __builtin_add_overflow(a, b, &r); return r;
}
__attribute__((noipa)) static int smulo(int64_t a, int64_t b, int64_t *r) { return __builtin_mul_overflow(a, b, r); }
__attribute__((noipa)) static uint64_t absdiff(int64_t a, int64_t b) { return a > b ? (uint64_t)a - (uint64_t)b : (uint64_t)b - (uint64_t)a; }
__attribute__((noipa)) static int64_t mymin(int64_t a, int64_t b) { return a < b ? a : b; }

static void p128(const char *tag, unsigned __int128 v) {
    printf("%s=%016" PRIx64 "%016" PRIx64 "\n", tag, (uint64_t)(v >> 64), (uint64_t)v);
}

int main(void) {
    /* A few results printed verbatim so a failure is easy to read. */
    printf("add8 %u\n", add8(200, 100));
    printf("mul16 %u\n", mul16(0xffff, 0xffff));
    printf("sub32 %u\n", sub32(3, 5));
    printf("mul64 %" PRIu64 "\n", mul64(0xdeadbeefcafebabeull, 0x123456789ull));
    printf("sdiv8 %d srem16 %d\n", sdiv8(-128, 3), srem16(-32768, 7));
    printf("sdiv32 %d %d %d\n", sdiv32(-7, 2), sdiv32(7, -2), sdiv32(-2147483647 - 1, 3));
    printf("srem32 %d %d\n", srem32(-7, 2), srem32(7, -2));
    printf("sdiv64 %" PRId64 " srem64 %" PRId64 "\n", sdiv64(INT64_MIN, 7), srem64(INT64_MIN, 7));
    printf("udiv %u %u %u %" PRIu64 " %" PRIu64 "\n", udiv8(255, 7), udiv32(0xffffffffu, 3),
           urem32(0xffffffffu, 10), udiv64(UINT64_MAX, 10), urem64(UINT64_MAX, 1000));
    printf("shifts %" PRIx64 " %" PRIx64 " %" PRId64 " %x %d %x\n", shl64(1, 63), shr64(UINT64_MAX, 60),
           sar64(INT64_MIN, 62), shl32(0x80000001u, 1), sar32(-256, 4), shr16(0x8000, 15));
    printf("shift-count-masked %" PRIx64 " %x\n", shl64(3, 65), shl32(3, 33));
    printf("rot %" PRIx64 " %x %x %x\n", rol64(0x8000000000000001ull, 1), ror32(1, 1), rol16(0x8001, 4), ror8(0x81, 1));
    p128("umul128", umul128(UINT64_MAX, UINT64_MAX));
    p128("smul128", (unsigned __int128)smul128(INT64_MIN, 3));
    p128("udiv128", udiv128(((unsigned __int128)0x123456789abcdefull << 64) | 0xfedcba9876543210ull, 1000000007));
    printf("sext %" PRId64 " %" PRId64 " %" PRId64 " zext %" PRIx64 "\n", sext8(0x80), sext16(0xfffe),
           sext32(0x80000000u), zext32(0xffffffff80000000ull));
    printf("cmp %d %d %d %d\n", cmp_s64(-1, 1), cmp_u64((uint64_t)-1, 1), cmp_s8(-128, 127), cmp_s64(5, 5));
    uint64_t c; uint64_t s = addc(UINT64_MAX, 2, &c);
    printf("addc %" PRIu64 " carry %" PRIu64 "\n", s, c);
    int64_t m; int o = smulo(INT64_MAX / 2 + 1, 2, &m);
    printf("smulo %d %" PRId64 "\n", o, m);
    printf("popcount %d %d clz %d %d ctz %d %d\n", __builtin_popcountll(vals[17]), __builtin_popcount((uint32_t)vals[13]),
           __builtin_clzll(vals[16]), __builtin_clz((uint32_t)vals[12]), __builtin_ctzll(vals[19]), __builtin_ctz((uint32_t)vals[8]));
    printf("bswap %" PRIx64 " %x %x\n", __builtin_bswap64(vals[17]), __builtin_bswap32((uint32_t)vals[12]),
           __builtin_bswap16((uint16_t)vals[12]));
    printf("absdiff %" PRIu64 " min %" PRId64 "\n", absdiff(-5, 10), mymin(-5, 10));

    /* Then every pair of table values through every operation, folded into one hash. */
    for (unsigned i = 0; i < NV; i++) {
        for (unsigned j = 0; j < NV; j++) {
            uint64_t a = vals[i], b = vals[j];
            mix(add8(a, b)); mix(mul16(a, b)); mix(sub32(a, b)); mix(mul64(a, b));
            if ((int8_t)b != 0 && !((int8_t)a == -128 && (int8_t)b == -1)) mix(sdiv8(a, b));
            if ((int16_t)b != 0) mix(srem16(a, b));
            if ((int32_t)b != 0 && !((int32_t)a == INT32_MIN && (int32_t)b == -1)) { mix(sdiv32(a, b)); mix(srem32(a, b)); }
            if (b != 0 && !((int64_t)a == INT64_MIN && (int64_t)b == -1)) { mix(sdiv64(a, b)); mix(srem64(a, b)); }
            if ((uint8_t)b) mix(udiv8(a, b));
            if ((uint32_t)b) { mix(udiv32(a, b)); mix(urem32(a, b)); }
            if (b) { mix(udiv64(a, b)); mix(urem64(a, b)); }
            mix(shl64(a, b)); mix(shr64(a, b)); mix(sar64(a, b)); mix(shl32(a, b)); mix(sar32(a, b));
            mix(shr16(a, b)); mix(rol64(a, b)); mix(ror32(a, b)); mix(rol16(a, b)); mix(ror8(a, b));
            unsigned __int128 u = umul128(a, b); mix((uint64_t)u); mix((uint64_t)(u >> 64));
            __int128 sm = smul128(a, b); mix((uint64_t)sm); mix((uint64_t)((unsigned __int128)sm >> 64));
            if (b) { u = udiv128(((unsigned __int128)a << 64) | b, b); mix((uint64_t)u); mix((uint64_t)(u >> 64)); }
            mix(cmp_s64(a, b)); mix(cmp_u64(a, b)); mix(cmp_s8(a, b));
            uint64_t carry; mix(addc(a, b, &carry)); mix(carry);
            int64_t prod; mix(smulo(a, b, &prod)); mix(prod);
            mix(absdiff(a, b)); mix(mymin(a, b));
        }
        uint64_t a = vals[i];
        mix(sext8(a)); mix(sext16(a)); mix(sext32(a)); mix(zext32(a));
        mix(__builtin_popcountll(a)); mix(__builtin_parityll(a));
        if (a) { mix(__builtin_clzll(a)); mix(__builtin_ctzll(a)); }
        if ((uint32_t)a) { mix(__builtin_clz((uint32_t)a)); mix(__builtin_ctz((uint32_t)a)); }
        mix(__builtin_bswap64(a)); mix(__builtin_bswap32((uint32_t)a)); mix(__builtin_bswap16((uint16_t)a));
    }
    printf("hash %016" PRIx64 "\n", h);
    return 0;
}
