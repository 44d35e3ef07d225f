/* Message passing, the litmus test x86's total store order guarantees and RVWMO does not without
 * fences: a writer stores data, then a flag; a reader that sees the flag must see the data.
 *
 * Part 1, free-running: the writer stores data[0..3] = r, then flag = r, for r = 1..10^6; the
 * reader repeatedly loads flag, then the data words, until it has seen flag 10^6. Data written
 * before a flag value can only be that round's or a later one: any data word < the flag seen is a
 * violation (a store-store or load-load reordering).
 * Part 2, per-round handshake: 10^5 rounds (each a round trip between the two threads, slow when
 * the machine's cores are busy) in which the writer stores fresh data then the flag and
 * waits for the reader's acknowledgement; the reader must see exactly that round's data.
 * Plain accesses with compiler barriers only, as x86 code relies on. Every wait spins with `pause`
 * and calls sched_yield after 1000 spins: pure spinning took over 60 s natively in CI, where the
 * tests' other processes kept both cores busy and each round trip waited for a scheduler tick. */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>

enum { ROUNDS = 1000000, HANDSHAKES = 100000 };
#define barrier() asm volatile("" ::: "memory")
#define LOAD(x) (*(volatile uint64_t *)&(x))
#define STORE(x, v) (*(volatile uint64_t *)&(x) = (v))

static uint64_t data[4] __attribute__((aligned(64)));
static uint64_t data_far __attribute__((aligned(64))); /* on another cache line */
static uint64_t flag __attribute__((aligned(64)));
static uint64_t ack __attribute__((aligned(64)));
static pthread_barrier_t start;

static void wait_a_little(unsigned *spins) {
    asm volatile("pause" ::: "memory");
    if (++*spins % 1000 == 0) sched_yield();
}

static void *writer(void *arg) {
    (void)arg;
    pthread_barrier_wait(&start);
    for (uint64_t r = 1; r <= ROUNDS; r++) {
        for (int i = 0; i < 4; i++) STORE(data[i], r);
        STORE(data_far, r);
        barrier();
        STORE(flag, r);
    }
    pthread_barrier_wait(&start);
    for (uint64_t r = 1; r <= HANDSHAKES; r++) {
        uint64_t v = r * 0x9e3779b97f4a7c15ull;
        STORE(data[r % 4], v);
        STORE(data_far, v ^ 1);
        barrier();
        STORE(flag, r);
        unsigned spins = 0;
        while (LOAD(ack) != r) wait_a_little(&spins);
    }
    return NULL;
}

int main(void) {
    pthread_t w;
    pthread_barrier_init(&start, 0, 2);
    pthread_create(&w, 0, writer, 0);
    pthread_barrier_wait(&start);
    uint64_t violations = 0, reads = 0, f;
    unsigned spins = 0;
    do {
        f = LOAD(flag);
        barrier();
        for (int i = 0; i < 4; i++) violations += LOAD(data[i]) < f;
        violations += LOAD(data_far) < f;
        reads++;
        if (f != ROUNDS) wait_a_little(&spins);
    } while (f != ROUNDS);
    printf("free-running: flag reached %" PRIu64 ", violations %" PRIu64 "\n", f, violations);

    STORE(flag, 0);
    pthread_barrier_wait(&start);
    uint64_t stale = 0;
    for (uint64_t r = 1; r <= HANDSHAKES; r++) {
        unsigned spins = 0;
        while (LOAD(flag) != r) wait_a_little(&spins);
        barrier();
        uint64_t v = r * 0x9e3779b97f4a7c15ull;
        stale += LOAD(data[r % 4]) != v;
        stale += LOAD(data_far) != (v ^ 1);
        barrier();
        STORE(ack, r);
    }
    pthread_join(w, 0);
    printf("handshake: %d rounds, stale data seen %" PRIu64 "\n", HANDSHAKES, stale);
    (void)reads;
    return violations || stale;
}
