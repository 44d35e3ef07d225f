/* Death by signal: the process raises SIGTERM with the default action, so the parent sees
 * "killed by signal 15" (ld-nc reports it as exit status 128+15). Output is flushed first. */
#include <signal.h>
#include <stdio.h>

int main(void) {
    printf("about to raise SIGTERM\n");
    fflush(stdout);
    raise(SIGTERM);
    printf("still alive?\n");
    return 0;
}
