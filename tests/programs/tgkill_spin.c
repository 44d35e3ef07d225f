/* tgkill reaches the thread it names, even when that thread spins in a pure loop (no syscall, no
 * call) on a flag only its signal handler sets. 4 threads register their tid and spin; the main
 * thread sends SIGUSR1 to each in turn with tgkill and waits (up to 20 s) for that one to stop
 * before the next. The handler looks its own tid up and marks its slot, so a signal delivered to
 * the wrong thread stops the wrong one and is reported. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { THREADS = 4 };
static volatile pid_t tids[THREADS];
static volatile sig_atomic_t stop_flag[THREADS];
static volatile int handled[THREADS];
static volatile int stray; /* handler runs on a thread with no slot (main) */
static volatile int stopped[THREADS];

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

static void on_usr1(int sig) {
    (void)sig;
    pid_t me = my_tid();
    for (int i = 0; i < THREADS; i++)
        if (tids[i] == me) {
            handled[i]++;
            stop_flag[i] = 1;
            return;
        }
    stray++;
}

static void *spinner(void *arg) {
    int i = (int)(intptr_t)arg;
    tids[i] = my_tid();
    unsigned long n = 0;
    while (!stop_flag[i]) n++;
    stopped[i] = 1;
    return (void *)n;
}

int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, 0);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], 0, spinner, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        while (!tids[i]) usleep(1000);
    usleep(10000); /* every thread is in its loop by now */
    int wrong = 0;
    for (int i = 0; i < THREADS; i++) {
        syscall(SYS_tgkill, getpid(), tids[i], SIGUSR1);
        int waited = 0;
        while (!stopped[i] && waited < 20000) {
            usleep(1000);
            waited++;
        }
        for (int j = i + 1; j < THREADS; j++) wrong += stopped[j];
        printf("thread %d: %s, its handler ran %d time(s)\n", i, stopped[i] ? "stopped" : "STILL SPINNING", handled[i]);
        if (!stopped[i]) {
            fflush(stdout);
            _exit(1); /* ends the spinning threads too */
        }
    }
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], 0);
    printf("joined all; signals taken by the wrong thread: %d, by the main thread: %d\n", wrong, stray);
    return wrong || stray;
}
