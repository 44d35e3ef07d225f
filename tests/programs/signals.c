/* Signals delivered to guest code: an SA_SIGINFO handler for raise(), SIGSEGV from a null write
 * and SIGFPE from a division by zero recovered with siglongjmp (faults raised by translated code
 * must reach the guest's handler with the right si_code and si_addr), a blocked signal left
 * pending and delivered on unblock, a handler on an alternate stack, SIGALRM from an interval
 * timer waking sigsuspend, and SIG_IGN. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1, got_usr2, got_alrm, usr1_code, usr1_pid_ok;
static sigjmp_buf recover;
static volatile int fault_signo, fault_code, fault_addr_ok;
static volatile uintptr_t fault_expect;
static char *altstack;
static size_t altsize;
static volatile int on_alt;

static void on_usr1(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got_usr1 = sig;
    usr1_code = si->si_code;
    usr1_pid_ok = si->si_pid == getpid();
}
static void on_usr2(int sig) {
    char local;
    got_usr2 = sig;
    on_alt = &local >= altstack && &local < altstack + altsize;
}
static void on_alrm(int sig) { got_alrm = sig; }
static void on_fault(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    fault_signo = sig;
    fault_code = si->si_code;
    fault_addr_ok = (uintptr_t)si->si_addr == fault_expect;
    siglongjmp(recover, 1);
}

__attribute__((noipa)) static void write_to(volatile int *p) { *p = 42; }
__attribute__((noipa)) static int divide(int a, int b) { return a / b; }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    printf("SIGUSR1 handled: sig %d si_code %d (SI_TKILL %d) si_pid is self %d\n", (int)got_usr1, (int)usr1_code, SI_TKILL,
           (int)usr1_pid_ok);

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    for (int i = 0; i < 3; i++) {
        volatile int *target = (volatile int *)(uintptr_t)(16 + 4096 * i);
        fault_expect = (uintptr_t)target;
        if (sigsetjmp(recover, 1) == 0) {
            write_to(target);
            printf("no fault?\n");
        } else {
            printf("recovered from signal %d si_code %d (SEGV_MAPERR %d) si_addr matches %d\n", fault_signo, fault_code,
                   SEGV_MAPERR, fault_addr_ok);
        }
    }
    if (sigsetjmp(recover, 1) == 0) {
        fault_expect = 0;
        printf("divide: %d\n", divide(7, 0));
    } else {
        printf("recovered from signal %d si_code %d (FPE_INTDIV %d)\n", fault_signo, fault_code, FPE_INTDIV);
    }

    /* Pending while blocked, delivered on unblock, on the alternate stack. */
    altsize = 64 * 1024;
    altstack = malloc(altsize);
    stack_t ss = { .ss_sp = altstack, .ss_size = altsize, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0) perror("sigaltstack");
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR2, &sa, NULL);
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    kill(getpid(), SIGUSR2);
    sigpending(&pending);
    printf("SIGUSR2 pending while blocked %d, handled yet %d\n", sigismember(&pending, SIGUSR2), (int)got_usr2);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("after unblock handled %d on alternate stack %d\n", got_usr2 == SIGUSR2, (int)on_alt);

    /* A timer wakes sigsuspend. */
    signal(SIGALRM, on_alrm);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGALRM);
    sigprocmask(SIG_BLOCK, &block, &old);
    struct itimerval it = { .it_interval = { 0, 0 }, .it_value = { 0, 20000 } };
    setitimer(ITIMER_REAL, &it, NULL);
    while (!got_alrm) sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("SIGALRM woke sigsuspend %d\n", got_alrm == SIGALRM);

    signal(SIGUSR1, SIG_IGN);
    raise(SIGUSR1);
    struct sigaction cur;
    sigaction(SIGUSR1, NULL, &cur);
    printf("SIGUSR1 ignored, disposition is SIG_IGN %d\n", cur.sa_handler == SIG_IGN);
    return 0;
}
