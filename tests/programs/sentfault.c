/* Fault signals sent by a process (kill, raise, tgkill: si_code <= 0) are not faults: with a
 * handler it runs and the program goes on; without one the default action kills with that signal
 * (the parent sees WTERMSIG), never a bogus fault report. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int got;
static void handler(int s, siginfo_t *si, void *u) {
    (void)u;
    got = s * 10 + (si->si_code <= 0);
}

static void child_dies_of(int sig, int how) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (how == 0) kill(getpid(), sig);
        else if (how == 1) raise(sig);
        else syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st)) printf("child killed by signal %d (way %d)\n", WTERMSIG(st), how);
    else printf("child exited %d (way %d)\n", WEXITSTATUS(st), how);
}

int main(void) {
    int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
    for (int i = 0; i < 4; i++) child_dies_of(sigs[i], i % 3);
    struct sigaction sa = {0};
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    for (int i = 0; i < 4; i++) sigaction(sigs[i], &sa, 0);
    for (int i = 0; i < 4; i++) {
        got = 0;
        if (i % 3 == 0) kill(getpid(), sigs[i]);
        else if (i % 3 == 1) raise(sigs[i]);
        else syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sigs[i]);
        printf("handler for %d: %d\n", sigs[i], got);
    }
    signal(SIGSEGV, SIG_IGN);
    kill(getpid(), SIGSEGV);
    printf("ignored SIGSEGV sent by kill\n");
    return 0;
}
