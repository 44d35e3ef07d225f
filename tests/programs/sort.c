/* qsort and bsearch over ints, doubles, strings and structs (callbacks from libc into program
 * code), with a hand-written check that the result is sorted and a permutation of the input. */
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t h = 0xcbf29ce484222325ull;
static void mix(uint64_t x) {
    for (int i = 0; i < 8; i++) { h ^= (x >> (8 * i)) & 0xff; h *= 0x100000001b3ull; }
}
static uint32_t seed = 1;
static uint32_t rnd(void) { seed = seed * 1664525u + 1013904223u; return seed >> 8; }

static unsigned calls;
static int cmp_int(const void *a, const void *b) {
    calls++;
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}
static int cmp_int_desc(const void *a, const void *b) { return cmp_int(b, a); }
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
struct rec { uint32_t key; uint32_t id; char pad[20]; };
static int cmp_rec(const void *a, const void *b) {
    const struct rec *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int main(void) {
    static const size_t sizes[] = { 0, 1, 2, 3, 5, 8, 13, 100, 1000, 20000 };
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        int *v = malloc((n + 1) * sizeof *v);
        long long sum = 0, sum2 = 0;
        for (size_t i = 0; i < n; i++) { v[i] = (int)(rnd() % 100000) - 50000; sum += v[i]; }
        calls = 0;
        qsort(v, n, sizeof *v, cmp_int);
        int ok = 1;
        for (size_t i = 0; i < n; i++) { sum2 += v[i]; if (i && v[i - 1] > v[i]) ok = 0; mix((uint32_t)v[i]); }
        int found = 0;
        for (int k = -50000; k < 50000; k += 997) {
            int *p = bsearch(&k, v, n, sizeof *v, cmp_int);
            if (p) { found++; if (*p != k) ok = 0; }
            else for (size_t i = 0; i < n; i++) if (v[i] == k) ok = 0;
        }
        for (size_t i = 0; i < n; i += 1 + n / 7) {
            int *p = bsearch(&v[i], v, n, sizeof *v, cmp_int);
            if (!p || *p != v[i]) ok = 0;
        }
        qsort(v, n, sizeof *v, cmp_int_desc);
        for (size_t i = 1; i < n; i++) if (v[i - 1] < v[i]) ok = 0;
        printf("ints n=%zu sorted=%d sum-kept=%d found=%d min=%d max=%d\n", n, ok, sum == sum2, found,
               n ? v[n - 1] : 0, n ? v[0] : 0);
        free(v);
    }
    double d[500];
    for (int i = 0; i < 500; i++) d[i] = (double)(rnd() % 1000000) / 7.0 - 50000.0;
    qsort(d, 500, sizeof d[0], cmp_double);
    int dok = 1;
    for (int i = 1; i < 500; i++) if (d[i - 1] > d[i]) dok = 0;
    printf("doubles sorted=%d first=%.6f last=%.6f median=%.6f\n", dok, d[0], d[499], d[250]);

    static const char *words[] = { "pear", "apple", "fig", "banana", "kiwi", "cherry", "date", "grape",
                                   "lemon", "mango", "apricot", "lime", "melon", "plum", "quince", "olive" };
    const char *w[16];
    memcpy(w, words, sizeof w);
    qsort(w, 16, sizeof w[0], cmp_str);
    printf("words:");
    for (int i = 0; i < 16; i++) printf(" %s", w[i]);
    printf("\n");
    const char *key = "lime";
    const char **p = bsearch(&key, w, 16, sizeof w[0], cmp_str);
    printf("bsearch lime -> index %ld\n", p ? (long)(p - w) : -1L);
    key = "zucchini";
    printf("bsearch zucchini -> %s\n", bsearch(&key, w, 16, sizeof w[0], cmp_str) ? "found" : "absent");

    struct rec *r = malloc(3000 * sizeof *r);
    for (uint32_t i = 0; i < 3000; i++) { r[i].key = rnd() % 50; r[i].id = i; memset(r[i].pad, (int)i, sizeof r[i].pad); }
    qsort(r, 3000, sizeof *r, cmp_rec);
    int rok = 1;
    for (int i = 0; i < 3000; i++) {
        if (i && cmp_rec(&r[i - 1], &r[i]) >= 0) rok = 0;
        if ((unsigned char)r[i].pad[19] != (unsigned char)r[i].id) rok = 0;
        mix(r[i].key); mix(r[i].id);
    }
    printf("records sorted=%d first=(%u,%u) last=(%u,%u)\n", rok, r[0].key, r[0].id, r[2999].key, r[2999].id);
    free(r);
    printf("hash %016" PRIx64 "\n", h);
    return 0;
}
