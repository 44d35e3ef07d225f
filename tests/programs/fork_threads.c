/* fork from a process with 4 other threads running: two spin in a pure loop (no syscall), one is
 * blocked in pthread_cond_wait, one in read(2) on a pipe. The child has only the forking thread:
 * it must be able to malloc, printf, create and join a thread of its own, and exit normally,
 * while the parent waits for it. Then the parent stops its own threads and joins them. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;
static volatile int running;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int cv_go;
static int pipefd[2];

static void *spinner(void *arg) {
    (void)arg;
    __atomic_add_fetch(&running, 1, __ATOMIC_SEQ_CST);
    unsigned long n = 0;
    while (!stop) n++;
    (void)n;
    return (void *)1;
}

static void *cond_waiter(void *arg) {
    (void)arg;
    pthread_mutex_lock(&m);
    __atomic_add_fetch(&running, 1, __ATOMIC_SEQ_CST);
    while (!cv_go) pthread_cond_wait(&cv, &m);
    pthread_mutex_unlock(&m);
    return (void *)1;
}

static void *reader(void *arg) {
    (void)arg;
    __atomic_add_fetch(&running, 1, __ATOMIC_SEQ_CST);
    char c;
    return (void *)(uintptr_t)(read(pipefd[0], &c, 1) == 1 && c == 'x');
}

static void *child_thread(void *arg) {
    char *s = malloc(64);
    snprintf(s, 64, "child thread got %d", *(int *)arg);
    return s;
}

int main(void) {
    if (pipe(pipefd)) return 1;
    pthread_t t[4];
    pthread_create(&t[0], 0, spinner, 0);
    pthread_create(&t[1], 0, spinner, 0);
    pthread_create(&t[2], 0, cond_waiter, 0);
    pthread_create(&t[3], 0, reader, 0);
    while (running != 4) usleep(1000);
    usleep(20000); /* let the waiters block */
    printf("parent: 4 threads running, forking\n");
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) {
        char *buf = malloc(100000);
        memset(buf, 'a', 100000);
        int arg = 42;
        pthread_t ct;
        void *res = 0;
        if (pthread_create(&ct, 0, child_thread, &arg) || pthread_join(ct, &res)) _exit(3);
        printf("child: malloc ok (%c), %s\n", buf[99999], (char *)res);
        free(res);
        free(buf);
        exit(7);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) return 4;
    printf("parent: child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    stop = 1;
    pthread_mutex_lock(&m);
    cv_go = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&m);
    if (write(pipefd[1], "x", 1) != 1) return 5;
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        ok += r != 0;
    }
    printf("parent: joined %d of 4 threads\n", ok);
    return 0;
}
