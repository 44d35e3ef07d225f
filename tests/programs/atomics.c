/* Every LOCK-prefixed form and XCHG with memory, hammered by 4 threads at once: each form is one
 * phase (all threads start it together at a barrier), every thread does ITER operations, and the
 * final value is exact whatever the interleaving, so a read-modify-write that is not atomic loses
 * updates and shows. Widths 8/16/32/64 wherever the form has them (8- and 16-bit counters wrap,
 * and the value printed is the exact value mod 2^width). Forms that keep no count (AND/OR/XOR/NOT,
 * BTC) are checked through a field each thread owns in the shared word: after its own locked
 * operation a thread must read back exactly the bits it expects, and the final word is known.
 * Flags around locked forms are used too: CF set before ADC/SBB, the carry out of a locked ADD
 * feeding a locked ADC, SF after NEG, CF after BTS/BTC, ZF after CMPXCHG.
 *
 * argv[1] is the number of operations per thread per form (ITER, default 1000000); the
 * cache-line-splitting forms do a fixed 500 (a split lock is a bus lock: about 60 µs each on this
 * machine's VM, and it stalls the whole machine while it runs). */
//! arg: 1000000
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { THREADS = 4 };
static long ITER = 1000000;
static pthread_barrier_t barrier;

/* Each phase's shared data sits on its own cache lines. */
#define SHARED __attribute__((aligned(64)))

/* ---------- counters: ADD/SUB/INC/DEC/ADC/SBB/XADD/CMPXCHG per width ---------- */

#define COUNTERS(T, W)                                                                              \
    static SHARED T add_imm##W, add_reg##W, sub_imm##W, sub_reg##W, inc##W, dec##W, adc##W,        \
        sbb##W, xadd##W, cas##W, neg##W, notx##W, and_or##W, xor##W;                               \
    static SHARED uint64_t xadd_sum##W, neg_seen##W, field_bad##W;
COUNTERS(uint8_t, 8)
COUNTERS(uint16_t, 16)
COUNTERS(uint32_t, 32)
COUNTERS(uint64_t, 64)

/* The carry chain: an 8-bit low counter whose locked ADD carries into a 64-bit locked ADC, and a
 * borrow chain the same way with SUB/SBB. Together they count exactly like one wide counter. */
static SHARED uint8_t carry_lo;
static SHARED uint64_t carry_hi;
static SHARED uint8_t borrow_lo;
static SHARED uint64_t borrow_hi;

/* Thread t owns the bits of the shared word at positions p with (p % 4) == t (8-bit: 2 bits each,
 * 64-bit: 16 bits each). */
#define OWNMASK(T, t) ((T)(((T)0x1111111111111111ull) << (t)))

/* A deterministic per-thread value stream for XOR and NOT. */
static inline uint64_t next_rand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 11;
}

#define OPS(T, W, S)                                                                                \
    static void ops##W(int t) {                                                                     \
        T one = 1, minus1 = (T)-1, mine = OWNMASK(T, t);                                            \
        uint64_t sum = 0, negs = 0, bad = 0, rs = 0x9e3779b97f4a7c15ull * (t + 1);                  \
        long n = ITER;                                                                              \
        pthread_barrier_wait(&barrier);                                                             \
        for (long i = 0; i < n; i++) asm volatile("lock add" S " $1, %0" : "+m"(add_imm##W));       \
        for (long i = 0; i < n; i++) asm volatile("lock add" S " %1, %0" : "+m"(add_reg##W) : "r"(one)); \
        for (long i = 0; i < n; i++) asm volatile("lock sub" S " $-1, %0" : "+m"(sub_imm##W));      \
        for (long i = 0; i < n; i++) asm volatile("lock sub" S " %1, %0" : "+m"(sub_reg##W) : "r"(minus1)); \
        for (long i = 0; i < n; i++) asm volatile("lock inc" S " %0" : "+m"(inc##W));               \
        for (long i = 0; i < n; i++) asm volatile("lock dec" S " %0" : "+m"(dec##W));               \
        /* CF live into the locked form: stc + adc 0 and clc + adc 1 both add one. */              \
        for (long i = 0; i < n; i++) {                                                             \
            if (i & 1) asm volatile("stc\n\tlock adc" S " $0, %0" : "+m"(adc##W) : : "cc");         \
            else asm volatile("clc\n\tlock adc" S " %1, %0" : "+m"(adc##W) : "r"(one) : "cc");      \
        }                                                                                           \
        /* stc + sbb -2 and clc + sbb -1 both add one. */                                          \
        for (long i = 0; i < n; i++) {                                                             \
            if (i & 1) asm volatile("stc\n\tlock sbb" S " $-2, %0" : "+m"(sbb##W) : : "cc");        \
            else asm volatile("clc\n\tlock sbb" S " %1, %0" : "+m"(sbb##W) : "r"(minus1) : "cc");   \
        }                                                                                           \
        /* XADD hands out every old value exactly once: their sum is known. */                     \
        for (long i = 0; i < n; i++) {                                                             \
            T old = 1;                                                                              \
            asm volatile("lock xadd" S " %1, %0" : "+m"(xadd##W), "+r"(old));                       \
            sum += old;                                                                             \
        }                                                                                           \
        asm volatile("lock addq %1, %0" : "+m"(xadd_sum##W) : "r"(sum));                           \
        /* CMPXCHG increment loop; ZF says whether it stored. */                                   \
        for (long i = 0; i < n; i++) {                                                             \
            T old = cas##W, ok;                                                                     \
            do {                                                                                    \
                T want = old + 1;                                                                   \
                uint8_t z;                                                                          \
                asm volatile("lock cmpxchg" S " %3, %0\n\tsetz %1"                                  \
                             : "+m"(cas##W), "=q"(z), "+a"(old) : "r"(want) : "cc");                \
                ok = z;                                                                             \
            } while (!ok);                                                                          \
        }                                                                                           \
        /* NEG between 5 and -5: the results alternate in sign, so exactly half are negative. */   \
        for (long i = 0; i < n; i++) {                                                              \
            uint8_t s;                                                                              \
            asm volatile("lock neg" S " %0\n\tsets %1" : "+m"(neg##W), "=q"(s) : : "cc");           \
            negs += s;                                                                              \
        }                                                                                           \
        asm volatile("lock addq %1, %0" : "+m"(neg_seen##W) : "r"(negs));                          \
        /* NOT commutes with XOR: an even number of NOTs and a known XOR stream give a known word. */ \
        for (long i = 0; i < n; i++) {                                                              \
            T v = (T)next_rand(&rs);                                                                \
            asm volatile("lock not" S " %0\n\tlock xor" S " %1, %0" : "+m"(notx##W) : "r"(v));     \
        }                                                                                           \
        /* OR sets and AND clears this thread's own bits; XOR toggles them with a stream: after     \
         * each, the thread reads back its own bits exactly. */                                    \
        T expect = 0;                                                                               \
        for (long i = 0; i < n; i++) {                                                              \
            T b = (T)(next_rand(&rs) & mine);                                                       \
            asm volatile("lock or" S " %1, %0" : "+m"(and_or##W) : "r"(b));                        \
            bad += ((*(volatile T *)&and_or##W & mine) != b);                                       \
            asm volatile("lock and" S " %1, %0" : "+m"(and_or##W) : "r"((T)~b));                   \
            bad += ((*(volatile T *)&and_or##W & mine) != 0);                                       \
            asm volatile("lock xor" S " %1, %0" : "+m"(xor##W) : "r"(b));                          \
            expect ^= b;                                                                            \
            bad += ((*(volatile T *)&xor##W & mine) != expect);                                     \
        }                                                                                           \
        asm volatile("lock addq %1, %0" : "+m"(field_bad##W) : "r"(bad));                          \
    }
OPS(uint8_t, 8, "b")
OPS(uint16_t, 16, "w")
OPS(uint32_t, 32, "l")
OPS(uint64_t, 64, "q")

static void carry_chain(void) {
    long n = ITER;
    pthread_barrier_wait(&barrier);
    for (long i = 0; i < n; i++)
        asm volatile("lock addb $1, %0\n\tlock adcq $0, %1" : "+m"(carry_lo), "+m"(carry_hi) : : "cc");
    for (long i = 0; i < n; i++)
        asm volatile("lock subb $1, %0\n\tlock sbbq $0, %1" : "+m"(borrow_lo), "+m"(borrow_hi) : : "cc");
}

/* ---------- BTS/BTR spin locks, BTC with a bit-string offset ---------- */

static SHARED uint16_t bitlock16;
static SHARED uint32_t bitlock32;
static SHARED uint64_t bitlock64;
static SHARED uint64_t bit_counter16, bit_counter32, bit_counter64;
static SHARED uint64_t btc_bits[4]; /* 256 bits, one cache line */
static SHARED uint64_t btc_bad;

#define BITLOCK(S, lockword, counter, bit)                                                         \
    for (long i = 0; i < n; i++) {                                                                 \
        uint8_t was;                                                                               \
        do asm volatile("lock bts" S " $" #bit ", %0\n\tsetc %1" : "+m"(lockword), "=q"(was) : : "cc", "memory"); \
        while (was);                                                                               \
        counter++;                                                                                 \
        asm volatile("lock btr" S " $" #bit ", %0" : "+m"(lockword) : : "cc", "memory");           \
    }

static void bit_ops(int t) {
    long n = ITER / 4;
    uint64_t bad = 0;
    uint8_t own[256 / THREADS] = {0};
    pthread_barrier_wait(&barrier);
    BITLOCK("w", bitlock16, bit_counter16, 13)
    BITLOCK("l", bitlock32, bit_counter32, 30)
    BITLOCK("q", bitlock64, bit_counter64, 45)
    /* Thread t toggles bits t, t+4, t+8, … of a 256-bit string through a register offset that
     * reaches past the addressed quadword (64-bit) or doubleword (32-bit form): the old bit in CF
     * must be the one this thread left there. */
    for (long i = 0; i < ITER; i++) {
        long k = (i * 7) % (256 / THREADS);
        long bit = k * THREADS + t;
        uint8_t was;
        if (i & 1)
            asm volatile("lock btcq %2, %0\n\tsetc %1" : "+m"(btc_bits), "=q"(was) : "r"(bit) : "cc");
        else
            asm volatile("lock btcl %k2, %0\n\tsetc %1" : "+m"(btc_bits), "=q"(was) : "r"(bit) : "cc");
        bad += (was != own[k]);
        own[k] ^= 1;
    }
    asm volatile("lock addq %1, %0" : "+m"(btc_bad) : "r"(bad));
}

/* ---------- CMPXCHG8B / CMPXCHG16B ---------- */

static SHARED uint64_t wide8;
static SHARED unsigned __int128 wide16 __attribute__((aligned(16)));

static void wide_cas(void) {
    long n = ITER;
    pthread_barrier_wait(&barrier);
    for (long i = 0; i < n; i++) {
        uint32_t lo = (uint32_t)wide8, hi = (uint32_t)(wide8 >> 32);
        uint8_t ok;
        do {
            uint64_t want = (((uint64_t)hi << 32) | lo) + 0x100000001ull;
            asm volatile("lock cmpxchg8b %0\n\tsetz %1"
                         : "+m"(wide8), "=q"(ok), "+a"(lo), "+d"(hi)
                         : "b"((uint32_t)want), "c"((uint32_t)(want >> 32))
                         : "cc");
        } while (!ok);
    }
    for (long i = 0; i < n; i++) {
        uint64_t lo = (uint64_t)wide16, hi = (uint64_t)(wide16 >> 64);
        uint8_t ok;
        do {
            unsigned __int128 want = (((unsigned __int128)hi << 64) | lo) + (((unsigned __int128)1 << 64) | 3);
            asm volatile("lock cmpxchg16b %0\n\tsetz %1"
                         : "+m"(wide16), "=q"(ok), "+a"(lo), "+d"(hi)
                         : "b"((uint64_t)want), "c"((uint64_t)(want >> 64))
                         : "cc");
        } while (!ok);
    }
}

/* ---------- XCHG spin locks around plain counters ---------- */

static SHARED uint8_t xlock8;
static SHARED uint32_t xlock32;
static SHARED uint64_t xlock64;
static SHARED uint16_t xlock16;
static SHARED uint64_t xcount8, xcount16, xcount32, xcount64;

#define XCHGLOCK(T, lockword, counter)                                                             \
    for (long i = 0; i < n; i++) {                                                                 \
        T v;                                                                                       \
        do {                                                                                       \
            v = 1;                                                                                 \
            asm volatile("xchg %1, %0" : "+m"(lockword), "+r"(v) : : "memory");                    \
        } while (v);                                                                               \
        counter++;                                                                                 \
        asm volatile("" ::: "memory");                                                             \
        *(volatile T *)&lockword = 0; /* a plain store releases under TSO */                       \
    }

static void xchg_locks(void) {
    long n = ITER / 4;
    pthread_barrier_wait(&barrier);
    XCHGLOCK(uint8_t, xlock8, xcount8)
    XCHGLOCK(uint16_t, xlock16, xcount16)
    XCHGLOCK(uint32_t, xlock32, xcount32)
    XCHGLOCK(uint64_t, xlock64, xcount64)
}

/* ---------- locked forms across a cache-line boundary ---------- */

static unsigned char split_line[192] __attribute__((aligned(64)));
#define SPLIT32 (*(uint32_t *)(split_line + 62))   /* bytes 62..65 */
#define SPLIT64 (*(uint64_t *)(split_line + 124))  /* bytes 124..131 */
enum { SPLIT_ITER = 500 };

static void split_ops(void) {
    long n = SPLIT_ITER;
    pthread_barrier_wait(&barrier);
    for (long i = 0; i < n; i++) {
        asm volatile("lock addl $0x10001, %0" : "+m"(SPLIT32));
        uint64_t old = 0x100000001ull;
        asm volatile("lock xaddq %1, %0" : "+m"(SPLIT64), "+r"(old));
    }
}

static void *worker(void *arg) {
    int t = (int)(intptr_t)arg;
    ops8(t);
    ops16(t);
    ops32(t);
    ops64(t);
    carry_chain();
    bit_ops(t);
    wide_cas();
    xchg_locks();
    split_ops();
    return NULL;
}

static int failures;

static void check(const char *what, uint64_t got, uint64_t want) {
    printf("%-22s %20" PRIu64 "%s\n", what, got, got == want ? "" : "   WRONG");
    if (got != want) {
        printf("  expected %" PRIu64 "\n", want);
        failures++;
    }
}

/* What NOT+XOR leaves: the XOR of every thread's stream (4 threads × ITER NOTs is even). */
static uint64_t xor_streams(uint64_t mask) {
    uint64_t x = 0;
    for (int t = 0; t < THREADS; t++) {
        uint64_t rs = 0x9e3779b97f4a7c15ull * (t + 1);
        for (long i = 0; i < ITER; i++) x ^= next_rand(&rs) & mask;
    }
    return x;
}

#define REPORT(W, MASK)                                                                             \
    do {                                                                                            \
        uint64_t total = (uint64_t)THREADS * ITER, m = (MASK);                                      \
        check("add-imm" #W, add_imm##W, total & m);                                                 \
        check("add-reg" #W, add_reg##W, total & m);                                                 \
        check("sub-imm" #W, sub_imm##W, total & m);                                                 \
        check("sub-reg" #W, sub_reg##W, total & m);                                                 \
        check("inc" #W, inc##W, total & m);                                                         \
        check("dec" #W, dec##W, (0 - total) & m);                                                   \
        check("adc" #W, adc##W, total & m);                                                         \
        check("sbb" #W, sbb##W, total & m);                                                         \
        check("xadd" #W, xadd##W, total & m);                                                       \
        /* Σ over k < total of (k mod 2^W), computed exactly. */                                   \
        uint64_t full = total / (m + 1), rest = total % (m + 1);                                    \
        uint64_t want = full * (m * (m + 1) / 2) + rest * (rest - 1) / 2;                          \
        if (W == 64) want = total * (total - 1) / 2;                                                \
        check("xadd-old-sum" #W, xadd_sum##W, want);                                                \
        check("cmpxchg" #W, cas##W, total & m);                                                     \
        check("neg" #W, neg##W, 5);                                                                 \
        check("neg-negative" #W, neg_seen##W, total / 2);                                           \
        check("not+xor" #W, notx##W, xor_streams(m));                                               \
        check("and/or" #W, and_or##W, 0);                                                           \
        check("own-field-bad" #W, field_bad##W, 0);                                                 \
    } while (0)

int main(int argc, char **argv) {
    if (argc > 1) ITER = strtol(argv[1], 0, 10);
    if (ITER <= 0 || ITER % 64) {
        fprintf(stderr, "iterations must be a positive multiple of 64\n");
        return 2;
    }
    neg8 = neg16 = neg32 = neg64 = 5;
    pthread_barrier_init(&barrier, 0, THREADS);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        if (pthread_create(&th[t], 0, worker, (void *)(intptr_t)t)) return 3;
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], 0);

    printf("%d threads x %ld operations per form\n", THREADS, ITER);
    /* The not+xor word saw the first ITER values of each thread's stream. */
    REPORT(8, 0xff);
    REPORT(16, 0xffff);
    REPORT(32, 0xffffffffull);
    REPORT(64, ~0ull);
    uint64_t total = (uint64_t)THREADS * ITER;
    check("add8-carry-chain", carry_hi * 256 + carry_lo, total);
    check("sub8-borrow-chain", borrow_hi * 256 + borrow_lo, 0 - total);
    check("bts/btr-lock16", bit_counter16, total / 4);
    check("bts/btr-lock32", bit_counter32, total / 4);
    check("bts/btr-lock64", bit_counter64, total / 4);
    check("btc-own-bit-bad", btc_bad, 0);
    /* Every bit was toggled ITER/64 times. */
    uint64_t bits = 0;
    for (int i = 0; i < 4; i++) bits += (uint64_t)__builtin_popcountll(btc_bits[i]);
    check("btc-final-set-bits", bits, (ITER / 64) % 2 ? 256 : 0);
    check("cmpxchg8b", wide8, total * 0x100000001ull);
    check("cmpxchg16b-lo", (uint64_t)wide16, total * 3);
    check("cmpxchg16b-hi", (uint64_t)(wide16 >> 64), total);
    check("xchg-lock8", xcount8, total / 4);
    check("xchg-lock16", xcount16, total / 4);
    check("xchg-lock32", xcount32, total / 4);
    check("xchg-lock64", xcount64, total / 4);
    check("split-line-add32", SPLIT32, (uint64_t)THREADS * SPLIT_ITER * 0x10001);
    check("split-line-xadd64", SPLIT64, (uint64_t)THREADS * SPLIT_ITER * 0x100000001ull);
    printf("%s\n", failures ? "FAILED" : "all exact");
    return failures != 0;
}
