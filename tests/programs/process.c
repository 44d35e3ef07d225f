/* Processes: fork with a pipe, waitpid statuses (exit code and death by signal), the child's
 * copy-on-write memory, and execv of this same program (argv[0]) in a child — under ld-nc the
 * exec of an x86_64 program must come back through ld-nc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static int shared_value = 10;

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--child") == 0) {
        printf("exec'd child: argc %d arg2 [%s]\n", argc, argc > 2 ? argv[2] : "");
        return 5;
    }
    fflush(stdout);
    int fds[2];
    if (pipe(fds) != 0) { perror("pipe"); return 1; }
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
        close(fds[0]);
        shared_value = 99;
        char msg[64];
        int n = snprintf(msg, sizeof msg, "child sees %d, parent is alive %d", shared_value, getppid() > 1);
        if (write(fds[1], msg, (size_t)n) != n) _exit(2);
        _exit(3);
    }
    close(fds[1]);
    char buf[128] = { 0 };
    ssize_t got = 0, n;
    while ((n = read(fds[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0) got += n;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    printf("from pipe: [%s]\n", buf);
    printf("child exited %d status %d; parent still sees %d\n", WIFEXITED(status), WEXITSTATUS(status), shared_value);

    pid = fork();
    if (pid == 0) {
        raise(SIGKILL);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    printf("second child signaled %d by %d\n", WIFSIGNALED(status), WTERMSIG(status));

    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        char *args[] = { argv[0], "--child", "hello from exec", NULL };
        execv(argv[0], args);
        perror("execv");
        _exit(127);
    }
    waitpid(pid, &status, 0);
    printf("exec'd child exited %d status %d\n", WIFEXITED(status), WEXITSTATUS(status));
    return 0;
}
