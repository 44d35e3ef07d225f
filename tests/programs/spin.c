/* A SIGALRM handler ends a busy-wait loop that makes no syscall and calls nothing: the signal must
 * reach the guest while its translated loop spins (ld-nc stops generated code at an instruction
 * boundary for it), not at some later exit that never comes. */
#include <signal.h>
#include <stdio.h>
#include <sys/time.h>

static volatile sig_atomic_t flag;

static void on_alarm(int sig) {
    (void)sig;
    flag = 1;
}

int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, 0);
    struct itimerval it = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, 0);
    unsigned long spins = 0;
    while (!flag) spins++;
    printf("woken by SIGALRM after spinning: %s\n", spins ? "yes" : "no");
    return 0;
}
