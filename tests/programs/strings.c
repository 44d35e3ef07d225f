/* String and memory functions over many lengths and alignments, checked against byte-by-byte
 * reference versions. glibc picks SSE2/AVX2 variants of these at start-up (IFUNC), so this
 * exercises vector loads that cross pages, unaligned heads and tails, and pcmpeqb/pmovmskb. */
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint64_t h = 0xcbf29ce484222325ull;
static void mix(uint64_t x) {
    for (int i = 0; i < 8; i++) { h ^= (x >> (8 * i)) & 0xff; h *= 0x100000001b3ull; }
}
static int sign(int x) { return (x > 0) - (x < 0); }
static unsigned failures;
static void check(int ok, const char *what, size_t len, size_t align) {
    if (!ok && failures++ < 20) printf("FAIL %s len=%zu align=%zu\n", what, len, align);
}

static size_t ref_strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
static int ref_memcmp(const unsigned char *a, const unsigned char *b, size_t n) {
    for (size_t i = 0; i < n; i++) if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return 0;
}
static const char *ref_strchr(const char *s, int c) {
    for (;; s++) { if (*s == (char)c) return s; if (!*s) return NULL; }
}

int main(void) {
    enum { BUF = 4096 };
    /* Two pages with the second one inaccessible: strings ending right before it catch
     * implementations that read past the terminator across a page boundary. */
    long pg = sysconf(_SC_PAGESIZE);
    unsigned char *guard = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard == MAP_FAILED) { perror("mmap"); return 1; }
    if (mprotect(guard + pg, pg, PROT_NONE) != 0) { perror("mprotect"); return 1; }
    unsigned char *a = malloc(BUF + 64), *b = malloc(BUF + 64), *c = malloc(BUF + 64);
    uint32_t seed = 12345;
    for (size_t i = 0; i < BUF + 64; i++) { seed = seed * 1103515245 + 12345; a[i] = 'a' + (seed >> 16) % 26; }

    static const size_t lens[] = { 0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65,
                                   95, 127, 128, 129, 255, 256, 257, 511, 1000, 1023, 1024, 2047, 4000 };
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t len = lens[li];
        for (size_t al = 0; al < 17; al++) {
            for (size_t bl = 0; bl < 17; bl += (al == 0 ? 1 : 5)) {
                unsigned char *src = a + al, *dst = b + bl;
                memset(b, 0x5a, BUF + 64);
                memcpy(dst, src, len);
                check(ref_memcmp(dst, src, len) == 0, "memcpy", len, al);
                check(bl == 0 || b[bl - 1] == 0x5a, "memcpy-underrun", len, bl);
                check(b[bl + len] == 0x5a, "memcpy-overrun", len, bl);
                mix(memcmp(dst, src, len));
                if (len) {
                    size_t k = (len * 7 + al) % len;
                    dst[k] ^= 0x20;
                    check(sign(memcmp(dst, src, len)) == ref_memcmp(dst, src, len), "memcmp", len, al);
                    check(sign(memcmp(src, dst, len)) == ref_memcmp(src, dst, len), "memcmp-rev", len, al);
                    mix(sign(memcmp(dst, src, len)));
                }
            }
            /* memset and memmove (overlapping both ways) */
            memcpy(c, a, BUF + 64);
            memset(c + al, (int)(len & 0xff), len);
            for (size_t i = 0; i < len; i++) if (c[al + i] != (unsigned char)len) { check(0, "memset", len, al); break; }
            check(al == 0 || c[al - 1] == a[al - 1], "memset-underrun", len, al);
            memcpy(c, a, BUF + 64);
            memmove(c + al + 3, c + al, len);
            check(ref_memcmp(c + al + 3, a + al, len) == 0, "memmove-fwd", len, al);
            memcpy(c, a, BUF + 64);
            memmove(c + al, c + al + 5, len);
            check(ref_memcmp(c + al, a + al + 5, len) == 0, "memmove-back", len, al);

            /* NUL-terminated functions */
            memcpy(c, a, BUF + 64);
            c[al + len] = 0;
            char *s = (char *)c + al;
            check(strlen(s) == len && ref_strlen(s) == len, "strlen", len, al);
            mix(strlen(s));
            memcpy(b, c, BUF + 64);
            check(strcmp(s, (char *)b + al) == 0, "strcmp-eq", len, al);
            if (len) {
                b[al + len - 1] = 'A';
                check(strcmp(s, (char *)b + al) > 0, "strcmp-gt", len, al);
                check(strncmp(s, (char *)b + al, len - 1) == 0, "strncmp", len, al);
            }
            int ch = 'a' + (int)(len % 26);
            check(strchr(s, ch) == ref_strchr(s, ch), "strchr", len, al);
            check(strchr(s, 0) == s + len, "strchr-nul", len, al);
            check(memchr(s, ch, len) == (void *)ref_strchr(s, ch) || (ref_strchr(s, ch) == NULL && memchr(s, ch, len) == NULL),
                  "memchr", len, al);
            const char *r = strrchr(s, ch);
            const char *rr = NULL;
            for (size_t i = 0; i < len; i++) if (s[i] == ch) rr = s + i;
            check(r == rr, "strrchr", len, al);
            if (len >= 6) {
                char needle[5];
                memcpy(needle, s + len - 5, 4);
                needle[4] = 0;
                const char *f = strstr(s, needle);
                check(f != NULL && f <= s + len - 5 && memcmp(f, needle, 4) == 0, "strstr", len, al);
                mix(f ? (uint64_t)(f - s) : 999999);
            }
            mix(strspn(s, "abcdefgh")); mix(strcspn(s, "xyz"));
            char *dup = strdup(s);
            check(dup && strcmp(dup, s) == 0, "strdup", len, al);
            free(dup);
            memset(b, 0, BUF + 64);
            strcpy((char *)b + (al ^ 3), s);
            check(strcmp((char *)b + (al ^ 3), s) == 0, "strcpy", len, al);
            strcat((char *)b + (al ^ 3), "xyz");
            check(strlen((char *)b + (al ^ 3)) == len + 3, "strcat", len, al);
        }
        /* Strings that end exactly at the guard page. */
        if (len < (size_t)pg) {
            char *s = (char *)guard + pg - len - 1;
            memcpy(s, a, len);
            s[len] = 0;
            check(strlen(s) == len, "strlen-guard", len, 0);
            check(strchr(s, '#') == NULL, "strchr-guard", len, 0);
            check(memchr(s, '#', len + 1) == NULL, "memchr-guard", len, 0);
            check(strcmp(s, s) == 0, "strcmp-guard", len, 0);
            check(strrchr(s, 0) == s + len, "strrchr-guard", len, 0);
        }
    }
    printf("failures %u\n", failures);
    printf("hash %016" PRIx64 "\n", h);
    char buf[64];
    snprintf(buf, sizeof buf, "%s-%d-%.3s", "abc", 42, "defghi");
    printf("snprintf %s len %zu\n", buf, strlen(buf));
    printf("strtok:");
    char text[] = "  alpha, beta,,gamma ;delta  ";
    for (char *t = strtok(text, " ,;"); t; t = strtok(NULL, " ,;")) printf(" [%s]", t);
    printf("\n");
    return failures != 0;
}
