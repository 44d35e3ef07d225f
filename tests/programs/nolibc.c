/* A C guest with no C library and no SSE (general registers only): integer work that a young
 * backend can already run — hashing with every operand width, 128-bit products, division,
 * recursion, a jump-table interpreter, sorting and binary search, a prime sieve and a bitwise
 * CRC-32 — reached from a hand-written _start, printing through raw write(2). */
//! cflags: -nostdlib -ffreestanding -fno-builtin -mgeneral-regs-only -fno-stack-protector -fno-asynchronous-unwind-tables
//! variants: gcc-static gcc-static-pie
//! arg: alpha
//! arg: beta gamma

typedef unsigned long u64;
typedef long i64;
typedef unsigned int u32;
typedef int i32;
typedef unsigned short u16;
typedef unsigned char u8;

/* The psABI entry: rsp points at argc, 16-byte aligned; call main(argc, argv) and exit with it. */
__asm__(".text\n"
        ".globl _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov (%rsp), %rdi\n"
        "  lea 8(%rsp), %rsi\n"
        "  and $-16, %rsp\n"
        "  call main\n"
        "  mov %eax, %edi\n"
        "  mov $231, %eax\n"
        "  syscall\n"
        "  hlt\n");

static i64 sys3(i64 n, i64 a, i64 b, i64 c) {
    i64 r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

/* gcc may still emit calls to these for aggregate copies and clears. */
void *memcpy(void *d, const void *s, u64 n) {
    u8 *dp = d;
    const u8 *sp = s;
    while (n--) *dp++ = *sp++;
    return d;
}
void *memset(void *d, int c, u64 n) {
    u8 *dp = d;
    while (n--) *dp++ = (u8)c;
    return d;
}

static char out[8192];
static u64 outlen;
static void flush(void) {
    u64 done = 0;
    while (done < outlen) {
        i64 w = sys3(1, 1, (i64)(out + done), (i64)(outlen - done));
        if (w <= 0) break;
        done += (u64)w;
    }
    outlen = 0;
}
static void put(const char *s) {
    while (*s) {
        if (outlen == sizeof out) flush();
        out[outlen++] = *s++;
    }
}
static void put_u64(u64 v) {
    char b[24];
    int i = 23;
    b[i] = 0;
    do { b[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    put(b + i);
}
static void put_i64(i64 v) {
    if (v < 0) { put("-"); put_u64(0 - (u64)v); } else put_u64((u64)v);
}
static void put_hex(u64 v) {
    char b[17];
    for (int i = 15; i >= 0; i--) { b[i] = "0123456789abcdef"[v & 15]; v >>= 4; }
    b[16] = 0;
    put(b);
}
static void kv(const char *k, u64 v) { put(k); put(" "); put_u64(v); put("\n"); }
static void kvx(const char *k, u64 v) { put(k); put(" "); put_hex(v); put("\n"); }

static u64 h = 0xcbf29ce484222325ul;
static void mix(u64 x) {
    for (int i = 0; i < 8; i++) { h ^= (x >> (8 * i)) & 0xff; h *= 0x100000001b3ul; }
}

__attribute__((noipa)) static u64 fib(u32 n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
__attribute__((noipa)) static u64 ack(u64 m, u64 n) {
    return m == 0 ? n + 1 : n == 0 ? ack(m - 1, 1) : ack(m - 1, ack(m, n - 1));
}

__attribute__((noipa)) static u64 step(u32 op, u64 acc, u64 arg) {
    switch (op) {
    case 0: return acc + arg;
    case 1: return acc - arg;
    case 2: return acc * (arg | 1);
    case 3: return acc ^ (arg << 7);
    case 4: return acc >> (arg & 31);
    case 5: return acc | (arg * 0x9e3779b97f4a7c15ul);
    case 6: return ~acc + arg;
    case 7: return acc / ((arg & 0xff) + 1);
    case 8: return acc % ((arg & 0xffff) + 3);
    case 9: return (acc << 13) | (acc >> 51);
    case 10: return acc & ~(arg << 3);
    case 11: return acc * 31 + 17;
    default: return acc + 1;
    }
}

static u32 crc32(const u8 *p, u64 n) {
    u32 c = 0xffffffffu;
    for (u64 i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static u32 data[3000];
static u8 composite[100001];

int main(i64 argc, char **argv) {
    put("nolibc guest\n");
    kv("argc", (u64)argc);
    for (i64 i = 1; i < argc; i++) { put("arg ["); put(argv[i]); put("]\n"); }

    /* Every width, signed and unsigned, through a fixed pseudo-random stream. */
    u64 x = 0x243f6a8885a308d3ul;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        u64 y = x * 0x9e3779b97f4a7c15ul + (u64)i;
        mix((u8)((u8)x + (u8)y)); mix((u16)((u16)x * (u16)y)); mix((u32)x - (u32)y); mix(x * y);
        if ((i32)y != 0 && !((i32)x == (i32)0x80000000 && (i32)y == -1)) { mix((u64)(i64)((i32)x / (i32)y)); mix((u64)(i64)((i32)x % (i32)y)); }
        if (y) { mix(x / y); mix(x % y); }
        if ((i64)y != 0 && (i64)y != -1) { mix((u64)((i64)x / (i64)y)); mix((u64)((i64)x % (i64)y)); }
        mix(x << (y & 63)); mix(x >> (y & 63)); mix((u64)((i64)x >> (y & 63)));
        mix((x << (y & 63)) | (x >> ((64 - (y & 63)) & 63)));
        unsigned __int128 p = (unsigned __int128)x * y;
        mix((u64)p); mix((u64)(p >> 64));
        __int128 sp = (__int128)(i64)x * (i64)y;
        mix((u64)sp); mix((u64)((unsigned __int128)sp >> 64));
        mix((u64)(i64)(signed char)x); mix((u64)(i64)(short)y); mix((u64)(i64)(i32)x);
        mix((i64)x < (i64)y); mix(x < y); mix((i32)x < (i32)y); mix((u16)x < (u16)y);
    }
    kvx("mixed", h);

    kv("fib(25)", fib(25));
    kv("ack(2,3)", ack(2, 3));
    kv("ack(3,3)", ack(3, 3));

    u64 acc = 1;
    x = 88172645463325252ul;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        acc = step((u32)(x % 13), acc, x);
    }
    kvx("interpreter", acc);

    for (int i = 0; i < 3000; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; data[i] = (u32)x % 100000; }
    for (int i = 1; i < 3000; i++) {
        u32 v = data[i];
        int j = i;
        while (j > 0 && data[j - 1] > v) { data[j] = data[j - 1]; j--; }
        data[j] = v;
    }
    int sorted = 1;
    for (int i = 1; i < 3000; i++) if (data[i - 1] > data[i]) sorted = 0;
    kv("sorted", (u64)sorted);
    u64 found = 0;
    for (u32 k = 0; k < 100000; k += 37) {
        int lo = 0, hi = 2999;
        while (lo <= hi) {
            int mid = (lo + hi) / 2;
            if (data[mid] == k) { found++; break; }
            if (data[mid] < k) lo = mid + 1; else hi = mid - 1;
        }
    }
    kv("binary-search hits", found);
    kv("min", data[0]);
    kv("max", data[2999]);

    u64 primes = 0, last = 0;
    for (u64 i = 2; i <= 100000; i++) {
        if (composite[i]) continue;
        primes++;
        last = i;
        for (u64 j = i * i; j <= 100000; j += i) composite[j] = 1;
    }
    kv("primes below 100001", primes);
    kv("largest", last);

    kvx("crc32", crc32((const u8 *)data, sizeof data));
    put("negative "); put_i64(-1234567890123l); put("\n");
    flush();
    return 0;
}
