/* A spin lock made of `lock cmpxchg` (test-and-test-and-set, `pause` while waiting) shared by 4
 * threads, protecting a plain, non-atomic counter and a plain two-word invariant: the total is
 * exact only if the lock excludes and its release publishes the critical section's stores. Under a
 * lock that runs guest threads one at a time with no preemption, a waiter spins forever. */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

enum { THREADS = 4, ITER = 1000000 };
static uint32_t lock_word __attribute__((aligned(64)));
static uint64_t counter __attribute__((aligned(64)));
static uint64_t pair_a, pair_b, torn;
static pthread_barrier_t barrier;

static void spin_lock(uint32_t *l) {
    for (;;) {
        uint32_t expected = 0, one = 1;
        uint8_t ok;
        asm volatile("lock cmpxchgl %3, %0\n\tsetz %1" : "+m"(*l), "=q"(ok), "+a"(expected) : "r"(one) : "cc", "memory");
        if (ok) return;
        while (*(volatile uint32_t *)l) asm volatile("pause" ::: "memory");
    }
}

static void spin_unlock(uint32_t *l) {
    asm volatile("" ::: "memory");
    *(volatile uint32_t *)l = 0; /* x86: a plain store releases */
}

static void *worker(void *arg) {
    (void)arg;
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < ITER; i++) {
        spin_lock(&lock_word);
        counter++;
        /* The pair is always equal outside the lock. */
        if (pair_a != pair_b) torn++;
        pair_a++;
        pair_b++;
        spin_unlock(&lock_word);
    }
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    pthread_barrier_init(&barrier, 0, THREADS);
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], 0, worker, 0);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], 0);
    printf("counter %" PRIu64 " (expected %d)\n", counter, THREADS * ITER);
    printf("pair %" PRIu64 " %" PRIu64 ", torn views %" PRIu64 "\n", pair_a, pair_b, torn);
    printf("lock word %" PRIu32 "\n", lock_word);
    return counter != (uint64_t)THREADS * ITER || torn;
}
