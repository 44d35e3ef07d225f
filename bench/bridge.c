/* bench/bridge.sh's guest program: loops of calls to native functions (through the bridge under
 * ld-nc) and a qsort whose comparator is a guest function called by native code (a callback round
 * trip per comparison). Prints nanoseconds per call for each phase. Argument: a scale (loop count
 * in millions). */
#include "native/benchlib.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static long compares;
static int cmp(const void *a, const void *b) {
    compares++;
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    long n = (argc > 1 ? atol(argv[1]) : 1) * 1000000;
    volatile long sink = 0;
    double t;

    t = now();
    for (long i = 0; i < n; i++) sink += bl_nop();
    printf("nop            %8.2f ns/call\n", (now() - t) * 1e9 / n);

    t = now();
    for (long i = 0; i < n; i++) sink += bl_add6(i, 1, 2, 3, 4, 5);
    printf("add6           %8.2f ns/call\n", (now() - t) * 1e9 / n);

    t = now();
    double d = 0;
    for (long i = 0; i < n; i++) d = bl_fma3(d, 0.5, 1.0);
    printf("fma3-double    %8.2f ns/call\n", (now() - t) * 1e9 / n);

    static char s[] = "bridge!";
    char *volatile sp = s; /* opaque to the compiler: strlen is really called */
    t = now();
    for (long i = 0; i < n; i++) sink += strlen(sp + (i & 1));
    printf("strlen         %8.2f ns/call\n", (now() - t) * 1e9 / n);

    long m = n / 20 > 1000 ? n / 20 : 1000;
    int *v = malloc(m * sizeof *v);
    unsigned x = 12345;
    for (long i = 0; i < m; i++) v[i] = (int)(x = x * 1103515245 + 12345);
    t = now();
    qsort(v, m, sizeof *v, cmp);
    printf("qsort-callback %8.2f ns/compare (%ld compares)\n", (now() - t) * 1e9 / compares, compares);
    for (long i = 1; i < m; i++)
        if (v[i - 1] > v[i]) return 1;
    free(v);
    return (int)(sink & 0) + (d < 0);
}
