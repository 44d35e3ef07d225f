/* Exit status passing: output flushed by exit(), atexit handlers run in reverse order, status 42. */
#include <stdio.h>
#include <stdlib.h>

static void first(void) { printf("atexit first-registered (runs last)\n"); }
static void second(void) { printf("atexit second-registered (runs first)\n"); }

int main(int argc, char **argv) {
    (void)argv;
    atexit(first);
    atexit(second);
    printf("exiting with 42 (argc %d)\n", argc);
    exit(42);
}
