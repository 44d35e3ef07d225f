/* A SIGALRM handler must run while read() blocks: with SA_RESTART the read is restarted after it
 * (and completes with what the handler wrote), without it the read fails with EINTR. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
static int fds[2];
static volatile int hits;
static void on_alrm(int s) { (void)s; hits++; if (hits == 1) write(fds[1], "x", 1); }
int main(void) {
    pipe(fds);
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alrm; sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, 0);
    struct itimerval it = { {0, 0}, {0, 50000} };
    setitimer(ITIMER_REAL, &it, 0);
    char c; ssize_t n = read(fds[0], &c, 1);
    printf("SA_RESTART: read %zd '%c' hits %d\n", n, c, hits);
    sa.sa_flags = 0; sigaction(SIGALRM, &sa, 0);
    hits = 5;
    setitimer(ITIMER_REAL, &it, 0);
    n = read(fds[0], &c, 1);
    printf("no SA_RESTART: read %zd errno EINTR %d hits %d\n", n, errno == EINTR, hits);
    return 0;
}
