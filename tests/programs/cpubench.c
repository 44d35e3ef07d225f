/* CPU-bound workload shared by the test suite (scale 1) and bench/run.sh (larger scales):
 * an FNV-1a and an xxhash-like multiply-rotate hash over a buffer, qsort and a hand-written
 * merge sort of the same data, a Mandelbrot set and an n-body simulation in double precision.
 * Usage: cpubench [SCALE [PHASE]]   (SCALE >= 1; work grows linearly; PHASE is one of hash, sort,
 * mandelbrot, nbody, or all by default). Without SCALE it runs a small smoke-sized workload (a
 * few ms natively) so the test suite can afford it under emulation. Prints checksums only. */
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static uint64_t fnv1a(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ull; }
    return h;
}
static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static uint64_t xxlike(const unsigned char *p, size_t n) {
    const uint64_t P1 = 0x9e3779b185ebca87ull, P2 = 0xc2b2ae3d27d4eb4full;
    uint64_t a = P1, b = P2, c = 0, d = ~P1;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        a = rotl(a + w[0] * P2, 31) * P1;
        b = rotl(b + w[1] * P2, 31) * P1;
        c = rotl(c + w[2] * P2, 31) * P1;
        d = rotl(d + w[3] * P2, 31) * P1;
    }
    uint64_t h = rotl(a, 1) + rotl(b, 7) + rotl(c, 12) + rotl(d, 18) + n;
    for (; i < n; i++) h = rotl(h ^ (p[i] * P1), 11) * P2;
    h ^= h >> 33; h *= P2; h ^= h >> 29;
    return h;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}
static void merge_sort(uint32_t *v, uint32_t *tmp, size_t n) {
    if (n < 16) {
        for (size_t i = 1; i < n; i++) {
            uint32_t x = v[i];
            size_t j = i;
            while (j > 0 && v[j - 1] > x) { v[j] = v[j - 1]; j--; }
            v[j] = x;
        }
        return;
    }
    size_t h = n / 2;
    merge_sort(v, tmp, h);
    merge_sort(v + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = v[i] <= v[j] ? v[i++] : v[j++];
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

static uint64_t mandelbrot(int w, int hgt, int maxit) {
    uint64_t total = 0;
    for (int y = 0; y < hgt; y++) {
        double ci = -1.25 + 2.5 * y / hgt;
        for (int x = 0; x < w; x++) {
            double cr = -2.0 + 3.0 * x / w, zr = 0, zi = 0;
            int it = 0;
            while (it < maxit && zr * zr + zi * zi <= 4.0) {
                double t = zr * zr - zi * zi + cr;
                zi = 2 * zr * zi + ci;
                zr = t;
                it++;
            }
            total += (uint64_t)it;
        }
    }
    return total;
}

struct body { double x, y, z, vx, vy, vz, m; };
static double nbody(int steps) {
    const double PI = 3.141592653589793, SOLAR = 4 * PI * PI, DPY = 365.24;
    struct body b[5] = {
        { 0, 0, 0, 0, 0, 0, SOLAR },
        { 4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01, 1.66007664274403694e-03 * DPY,
          7.69901118419740425e-03 * DPY, -6.90460016972063023e-05 * DPY, 9.54791938424326609e-04 * SOLAR },
        { 8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01, -2.76742510726862411e-03 * DPY,
          4.99852801234917238e-03 * DPY, 2.30417297573763929e-05 * DPY, 2.85885980666130812e-04 * SOLAR },
        { 1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01, 2.96460137564761618e-03 * DPY,
          2.37847173959480950e-03 * DPY, -2.96589568540237556e-05 * DPY, 4.36624404335156298e-05 * SOLAR },
        { 1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01, 2.68067772490389322e-03 * DPY,
          1.62824170038242295e-03 * DPY, -9.51592254519715870e-05 * DPY, 5.15138902046611451e-05 * SOLAR },
    };
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < 5; i++)
            for (int j = i + 1; j < 5; j++) {
                double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
                double d2 = dx * dx + dy * dy + dz * dz;
                double mag = 0.01 / (d2 * sqrt(d2));
                b[i].vx -= dx * b[j].m * mag; b[i].vy -= dy * b[j].m * mag; b[i].vz -= dz * b[j].m * mag;
                b[j].vx += dx * b[i].m * mag; b[j].vy += dy * b[i].m * mag; b[j].vz += dz * b[i].m * mag;
            }
        for (int i = 0; i < 5; i++) { b[i].x += 0.01 * b[i].vx; b[i].y += 0.01 * b[i].vy; b[i].z += 0.01 * b[i].vz; }
    }
    double e = 0;
    for (int i = 0; i < 5; i++) {
        e += 0.5 * b[i].m * (b[i].vx * b[i].vx + b[i].vy * b[i].vy + b[i].vz * b[i].vz);
        for (int j = i + 1; j < 5; j++) {
            double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
            e -= b[i].m * b[j].m / sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}

int main(int argc, char **argv) {
    long scale = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    int smoke = scale < 1;
    if (smoke) scale = 1;
    const char *phase = argc > 2 ? argv[2] : "all";
    int all = strcmp(phase, "all") == 0;
    if (!all && strcmp(phase, "hash") && strcmp(phase, "sort") && strcmp(phase, "mandelbrot") && strcmp(phase, "nbody")) {
        fprintf(stderr, "cpubench: unknown phase %s\n", phase);
        return 2;
    }
#define RUN(name) (all || strcmp(phase, name) == 0)

    size_t n = smoke ? 1 << 16 : 1 << 20;
    unsigned char *buf = malloc(n);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; buf[i] = (unsigned char)x; }
    if (RUN("hash")) {
        uint64_t hf = 0, hx = 0;
        for (long r = 0; r < (smoke ? 2 : 8 * scale); r++) { buf[r % n] ^= (unsigned char)r; hf ^= fnv1a(buf, n); hx ^= xxlike(buf, n); }
        printf("fnv1a %016" PRIx64 " xxlike %016" PRIx64 "\n", hf, hx);
    }

    size_t m = (smoke ? 10000 : 100000) * (size_t)scale;
    uint32_t *a = malloc(m * sizeof *a), *b = malloc(m * sizeof *b), *tmp = malloc(m * sizeof *tmp);
    for (size_t i = 0; i < m; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; a[i] = b[i] = (uint32_t)x; }
    int same = 1;
    if (RUN("sort")) {
        qsort(a, m, sizeof *a, cmp_u32);
        merge_sort(b, tmp, m);
        same = memcmp(a, b, m * sizeof *a) == 0;
        printf("sort n=%zu same %d checksum %016" PRIx64 "\n", m, same, fnv1a((unsigned char *)a, m * sizeof *a));
    }
    if (RUN("mandelbrot"))
        printf("mandelbrot %" PRIu64 "\n", smoke ? mandelbrot(60, 30, 100) : mandelbrot(400, 100 * (int)scale, 500));
    if (RUN("nbody")) printf("nbody %.9f\n", nbody(smoke ? 2000 : 150000 * (int)scale));
    free(buf); free(a); free(b); free(tmp);
    return same ? 0 : 1;
}
