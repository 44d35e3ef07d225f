/* CPU-bound work split across T threads, for bench/threads.sh: the same total work (UNITS work
 * units of integer hashing and a small per-thread table walk, no floating point, no shared writes
 * while working, no syscalls) whatever T, so T=1 and T=2 runs compare directly. Prints one
 * checksum that does not depend on T (so every mode's output is checked against one file).
 * Usage: threads THREADS SCALE */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { MAX_THREADS = 64, TABLE = 4096, UNIT_STEPS = 20000 };

struct job {
    uint64_t first, count, result;
    pthread_t thread;
};

/* One work unit: a xorshift stream mixed through a private table (loads and stores to
 * thread-local memory: the kind of code a TSO-preserving translator must fence). */
static uint64_t unit(uint64_t seed, uint32_t *table) {
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1, acc = 0;
    for (int i = 0; i < TABLE; i++) table[i] = (uint32_t)(i * 2654435761u);
    for (int i = 0; i < UNIT_STEPS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t k = (uint32_t)x % TABLE;
        table[k] = table[k] * 33 + (uint32_t)(x >> 32);
        acc += table[(k * 7 + 1) % TABLE] ^ (acc >> 3);
    }
    return acc;
}

static void *work(void *arg) {
    struct job *j = arg;
    uint32_t *table = malloc(TABLE * sizeof *table);
    uint64_t sum = 0;
    for (uint64_t u = j->first; u < j->first + j->count; u++) sum += unit(u, table) * (u | 1);
    free(table);
    j->result = sum;
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    long scale = argc > 2 ? atol(argv[2]) : 1;
    if (threads < 1 || threads > MAX_THREADS || scale < 1) {
        fprintf(stderr, "usage: threads THREADS(1-%d) SCALE(>=1)\n", MAX_THREADS);
        return 2;
    }
    uint64_t units = (uint64_t)scale * 64;
    struct job jobs[MAX_THREADS];
    for (int t = 0; t < threads; t++) {
        jobs[t].first = units * t / threads;
        jobs[t].count = units * (t + 1) / threads - jobs[t].first;
    }
    /* Thread 0's share runs on the main thread, the others on new threads. */
    for (int t = 1; t < threads; t++)
        if (pthread_create(&jobs[t].thread, 0, work, &jobs[t])) return 3;
    work(&jobs[0]);
    uint64_t total = jobs[0].result;
    for (int t = 1; t < threads; t++) {
        pthread_join(jobs[t].thread, 0);
        total += jobs[t].result;
    }
    printf("units %" PRIu64 " checksum %016" PRIx64 "\n", units, total);
    return 0;
}
