/* Threads: pthread_create/join with results, a mutex-protected counter, per-thread __thread
 * variables (the guest's FS base must follow each thread), pthread_once, a condition-variable
 * ping-pong and atomics. Output is independent of scheduling. */
#include <pthread.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

enum { THREADS = 4, ITER = 100000 };
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t counter;
static _Atomic uint64_t atomic_counter;
static __thread uint64_t tls_value = 7;
static __thread char tls_name[16];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_runs;

static void init_once(void) { once_runs++; }

static void *worker(void *arg) {
    uintptr_t id = (uintptr_t)arg;
    pthread_once(&once, init_once);
    tls_value = 1000 + id;
    snprintf(tls_name, sizeof tls_name, "thread-%u", (unsigned)id);
    uint64_t local = 0;
    for (uint64_t i = 0; i < ITER; i++) {
        local += i * (id + 1);
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
        atomic_counter++;
    }
    /* tls_value must still be this thread's value after all the switching. */
    uint64_t *result = malloc(2 * sizeof *result);
    result[0] = local;
    result[1] = tls_value * 100 + (tls_name[7] - '0');
    return result;
}

static pthread_mutex_t pp_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pp_cond = PTHREAD_COND_INITIALIZER;
static int turn, volleys;

static void *pong(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&pp_lock);
        while (turn != 1) pthread_cond_wait(&pp_cond, &pp_lock);
        volleys++;
        turn = 0;
        pthread_cond_signal(&pp_cond);
        pthread_mutex_unlock(&pp_lock);
    }
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0) { printf("pthread_create failed\n"); return 1; }
    for (int i = 0; i < THREADS; i++) {
        uint64_t *r;
        pthread_join(t[i], (void **)&r);
        printf("thread %d: sum %" PRIu64 " tls %" PRIu64 "\n", i, r[0], r[1]);
        free(r);
    }
    printf("counter %" PRIu64 " atomic %" PRIu64 " once ran %d\n", counter, (uint64_t)atomic_counter, once_runs);
    printf("main tls_value still %" PRIu64 " name [%s]\n", tls_value, tls_name);

    pthread_t p;
    pthread_create(&p, NULL, pong, NULL);
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&pp_lock);
        while (turn != 0) pthread_cond_wait(&pp_cond, &pp_lock);
        volleys++;
        turn = 1;
        pthread_cond_signal(&pp_cond);
        pthread_mutex_unlock(&pp_lock);
    }
    pthread_join(p, NULL);
    printf("ping-pong volleys %d\n", volleys);
    return 0;
}
