/* A dense switch that gcc -O2 compiles to an indirect jump through a table (the harness checks
 * the disassembly of `dispatch` for it): a little bytecode interpreter. Indirect jumps are where a
 * translator must look targets up at run time. */
#include <stdio.h>
#include <stdint.h>
#include <inttypes.h>

__attribute__((noinline)) uint64_t dispatch(unsigned op, uint64_t acc, uint64_t arg) {
    switch (op) {
    case 0: return acc + arg;
    case 1: return acc - arg;
    case 2: return acc * (arg | 1);
    case 3: return acc ^ (arg << 7);
    case 4: return acc >> (arg & 31);
    case 5: return acc | (arg * 0x9e3779b97f4a7c15ull);
    case 6: return ~acc + arg;
    case 7: return acc / ((arg & 0xff) + 1);
    case 8: return acc % ((arg & 0xffff) + 3);
    case 9: return (acc << 13) | (acc >> 51);
    case 10: return acc & ~(arg << 3);
    case 11: return acc * 31 + 17;
    case 12: return acc + (arg >> 2) * 5;
    case 13: return acc - (acc >> 3);
    case 14: return arg ^ 0x5555aaaa5555aaaaull ^ acc;
    case 15: return acc + __builtin_popcountll(arg);
    default: return acc + 1;
    }
}

int main(void) {
    uint64_t acc = 1, x = 0x243f6a8885a308d3ull;
    unsigned counts[17] = { 0 };
    for (unsigned i = 0; i < 200000; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        unsigned op = (unsigned)(x % 17);
        counts[op]++;
        acc = dispatch(op, acc, x);
    }
    printf("acc %016" PRIx64 "\n", acc);
    for (unsigned i = 0; i < 17; i++) printf("op %u: %u\n", i, counts[i]);
    /* Each case once, in order, so a wrong table entry shows up by name. */
    for (unsigned op = 0; op < 18; op++) printf("dispatch(%u, 1000, 77) = %" PRIu64 "\n", op, dispatch(op, 1000, 77));
    return 0;
}
