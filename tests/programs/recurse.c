/* Deep and branchy recursion: naive Fibonacci, Ackermann and a mutually recursive pair. Exercises
 * call/return pairing (the return-address stack of a translator) and stack growth. */
#include <stdio.h>
#include <stdint.h>
#include <inttypes.h>

__attribute__((noipa)) static uint64_t fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
__attribute__((noipa)) static uint64_t ack(uint64_t m, uint64_t n) {
    if (m == 0) return n + 1;
    if (n == 0) return ack(m - 1, 1);
    return ack(m - 1, ack(m, n - 1));
}
__attribute__((noipa)) static int is_odd(unsigned n);
__attribute__((noipa)) static int is_even(unsigned n) { return n == 0 ? 1 : is_odd(n - 1); }
__attribute__((noipa)) static int is_odd(unsigned n) { return n == 0 ? 0 : is_even(n - 1); }
/* Recursion with a frame big enough to touch a new stack page at each level. */
__attribute__((noipa)) static uint64_t deep(unsigned n) {
    volatile unsigned char frame[4200];
    frame[0] = (unsigned char)n;
    frame[sizeof frame - 1] = (unsigned char)(n >> 1);
    if (n == 0) return 0;
    return deep(n - 1) + frame[0] + frame[sizeof frame - 1];
}
/* Tower of Hanoi, counting moves per peg pair. */
static unsigned long moves[3][3];
__attribute__((noipa)) static void hanoi(unsigned n, int from, int to, int via) {
    if (n == 0) return;
    hanoi(n - 1, from, via, to);
    moves[from][to]++;
    hanoi(n - 1, via, to, from);
}

int main(void) {
    for (unsigned n = 0; n <= 30; n += 5) printf("fib(%u) = %" PRIu64 "\n", n, fib(n));
    for (uint64_t m = 0; m <= 3; m++)
        for (uint64_t n = 0; n <= 4; n++) printf("ack(%" PRIu64 ",%" PRIu64 ") = %" PRIu64 "\n", m, n, ack(m, n));
    printf("ack(2,500) = %" PRIu64 "\n", ack(2, 500));
    printf("even(100001) = %d odd(77777) = %d\n", is_even(100001), is_odd(77777));
    printf("deep(1500) = %" PRIu64 "\n", deep(1500));
    hanoi(18, 0, 2, 1);
    printf("hanoi:");
    for (int i = 0; i < 3; i++) for (int j = 0; j < 3; j++) if (i != j) printf(" %d>%d=%lu", i, j, moves[i][j]);
    printf("\n");
    return 0;
}
