/* Heap churn: many allocations of mixed sizes (small bins, large mmap-backed blocks), frees in a
 * scrambled order, realloc growing and shrinking with contents checked, calloc zeroing, and
 * posix_memalign/aligned_alloc alignment. Prints only contents and checks, never addresses. */
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t seed = 7;
static uint32_t rnd(void) { seed ^= seed << 13; seed ^= seed >> 17; seed ^= seed << 5; return seed; }

int main(void) {
    enum { SLOTS = 2048, ROUNDS = 30000 };
    static unsigned char *slot[SLOTS];
    static size_t size[SLOTS];
    unsigned bad = 0, allocs = 0, reallocs = 0, frees = 0;
    uint64_t total = 0;
    for (unsigned r = 0; r < ROUNDS; r++) {
        unsigned i = rnd() % SLOTS;
        unsigned kind = rnd() % 16;
        size_t n = kind < 10 ? rnd() % 128 + 1 : kind < 15 ? rnd() % 8192 + 1 : rnd() % (160 * 1024) + 1;
        if (slot[i] == NULL) {
            slot[i] = (kind & 1) ? calloc(1, n) : malloc(n);
            if (!slot[i]) { printf("allocation of %zu failed\n", n); return 1; }
            if (kind & 1) for (size_t k = 0; k < n; k++) if (slot[i][k]) { bad++; break; }
            memset(slot[i], (int)(i & 0xff), n);
            size[i] = n;
            allocs++;
        } else if (kind < 6) {
            for (size_t k = 0; k < size[i]; k++) if (slot[i][k] != (unsigned char)i) { bad++; break; }
            unsigned char *p = realloc(slot[i], n);
            if (!p) { printf("realloc to %zu failed\n", n); return 1; }
            size_t keep = n < size[i] ? n : size[i];
            for (size_t k = 0; k < keep; k++) if (p[k] != (unsigned char)i) { bad++; break; }
            memset(p, (int)(i & 0xff), n);
            slot[i] = p;
            size[i] = n;
            reallocs++;
        } else {
            for (size_t k = 0; k < size[i]; k++) if (slot[i][k] != (unsigned char)i) { bad++; break; }
            free(slot[i]);
            slot[i] = NULL;
            frees++;
        }
        total += n;
    }
    for (unsigned i = 0; i < SLOTS; i++) free(slot[i]);
    printf("allocs %u reallocs %u frees %u bytes %" PRIu64 " bad %u\n", allocs, reallocs, frees, total, bad);

    unsigned misaligned = 0;
    for (size_t al = 8; al <= 65536; al *= 2) {
        void *p = NULL;
        if (posix_memalign(&p, al, 100 + al) != 0 || ((uintptr_t)p & (al - 1))) misaligned++;
        memset(p, 1, 100 + al);
        free(p);
        p = aligned_alloc(al, al * 3);
        if (!p || ((uintptr_t)p & (al - 1))) misaligned++;
        free(p);
    }
    printf("aligned allocations misaligned %u\n", misaligned);

    /* A linked list built and torn down, as real programs do. */
    struct node { struct node *next; uint64_t v; char name[24]; } *head = NULL;
    for (uint64_t v = 0; v < 100000; v++) {
        struct node *n = malloc(sizeof *n);
        n->next = head;
        n->v = v * v;
        snprintf(n->name, sizeof n->name, "n%" PRIu64, v);
        head = n;
    }
    uint64_t sum = 0;
    size_t namelen = 0;
    while (head) { struct node *n = head->next; sum += head->v; namelen += strlen(head->name); free(head); head = n; }
    printf("list sum %" PRIu64 " namelen %zu\n", sum, namelen);
    char *s = NULL;
    size_t len = 0;
    for (int i = 0; i < 2000; i++) {
        char piece[16];
        int k = snprintf(piece, sizeof piece, "%d,", i);
        s = realloc(s, len + (size_t)k + 1);
        memcpy(s + len, piece, (size_t)k + 1);
        len += (size_t)k;
    }
    printf("grown string len %zu tail %s\n", len, s + len - 10);
    free(s);
    return bad != 0;
}
