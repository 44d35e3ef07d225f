/* A lock-free single-producer/single-consumer ring as x86 code writes one: plain loads and stores
 * and compiler barriers only (x86's total store order makes the slot's store visible before the
 * index store that publishes it, and the consumer's slot load happen before its index store that
 * frees the slot). 10^6 sequence numbers pass through a 1024-entry ring; the consumer checks each
 * one's order and a checksum word stored with it. A missing store-store or load-load order on a
 * weaker host shows as a wrong or stale slot. Both sides spin with `pause` when the ring is full
 * or empty, and call sched_yield after 1000 spins (with more runnable threads than cores, pure
 * spinning made the native run take 10 s). */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <sched.h>
#include <stdio.h>

enum { COUNT = 1000000, SIZE = 1024 };
#define barrier() asm volatile("" ::: "memory")

static void wait_a_little(unsigned *spins) {
    asm volatile("pause" ::: "memory");
    if (++*spins % 1000 == 0) sched_yield();
}

struct slot {
    uint64_t seq;
    uint64_t check;
};
static struct slot ring[SIZE] __attribute__((aligned(64)));
static volatile uint64_t head __attribute__((aligned(64))); /* next slot to read (consumer writes) */
static volatile uint64_t tail __attribute__((aligned(64))); /* next slot to write (producer writes) */

static uint64_t mix(uint64_t x) { return (x ^ (x >> 31)) * 0x9e3779b97f4a7c15ull; }

static void *producer(void *arg) {
    (void)arg;
    for (uint64_t i = 1; i <= COUNT; i++) {
        uint64_t t = tail;
        unsigned spins = 0;
        while (t - head == SIZE) wait_a_little(&spins);
        barrier();
        ring[t % SIZE].seq = i;
        ring[t % SIZE].check = mix(i);
        barrier();
        tail = t + 1;
    }
    return NULL;
}

int main(void) {
    pthread_t p;
    pthread_create(&p, 0, producer, 0);
    uint64_t expect = 1, sum = 0, out_of_order = 0, bad_check = 0;
    while (expect <= COUNT) {
        uint64_t h = head;
        unsigned spins = 0;
        while (tail == h) wait_a_little(&spins);
        barrier();
        uint64_t seq = ring[h % SIZE].seq, check = ring[h % SIZE].check;
        barrier();
        head = h + 1;
        out_of_order += seq != expect;
        bad_check += check != mix(seq);
        sum += seq;
        expect++;
    }
    pthread_join(p, 0);
    printf("received %" PRIu64 " items, sum %" PRIu64 " (expected %" PRIu64 ")\n", expect - 1, sum,
           (uint64_t)COUNT * (COUNT + 1) / 2);
    printf("out of order %" PRIu64 ", bad check words %" PRIu64 "\n", out_of_order, bad_check);
    return out_of_order || bad_check;
}
