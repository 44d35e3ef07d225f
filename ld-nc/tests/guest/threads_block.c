/* Guest threads blocked in calls ld-nc converts (poll, select, epoll_wait) must let the other
 * threads run: each waits for a pipe the main thread writes only afterwards. Prints
 * "poll 1 select 1 epoll 1". */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <unistd.h>

static int p1[2], p2[2], p3[2];

static void *by_poll(void *a) {
    (void)a;
    struct pollfd f = { .fd = p1[0], .events = POLLIN };
    return (void *)(long)poll(&f, 1, 10000);
}

static void *by_select(void *a) {
    (void)a;
    fd_set r;
    FD_ZERO(&r);
    FD_SET(p2[0], &r);
    struct timeval tv = { 10, 0 };
    return (void *)(long)select(p2[0] + 1, &r, 0, 0, &tv);
}

static void *by_epoll(void *a) {
    (void)a;
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 7 };
    epoll_ctl(ep, EPOLL_CTL_ADD, p3[0], &ev);
    struct epoll_event out;
    int n = epoll_wait(ep, &out, 1, 10000);
    return (void *)(long)(n == 1 && out.data.u64 == 7);
}

int main(void) {
    pipe(p1);
    pipe(p2);
    pipe(p3);
    pthread_t t[3];
    pthread_create(&t[0], 0, by_poll, 0);
    pthread_create(&t[1], 0, by_select, 0);
    pthread_create(&t[2], 0, by_epoll, 0);
    usleep(100000);
    write(p1[1], "a", 1);
    write(p2[1], "b", 1);
    write(p3[1], "c", 1);
    void *r[3];
    for (int i = 0; i < 3; i++) pthread_join(t[i], &r[i]);
    printf("poll %ld select %ld epoll %ld\n", (long)r[0], (long)r[1], (long)r[2]);
    return 0;
}
