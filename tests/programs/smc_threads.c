/* Cross-modifying code: a function in an RWX mapping (`mov $imm32, %eax; ret`, the immediate
 * 4-byte aligned so each rewrite is one atomic store) is called in a loop by one thread while the
 * main thread rewrites its immediate, 200 times. The caller must only ever get the old or the new
 * value, and must eventually get the new one (a translation of the old code may not live on); it
 * acknowledges each new value, and only then does the writer make the next. The caller spins
 * without syscalls. A second phase rewrites the whole 8-byte body the same way (one aligned 8-byte
 * store), alternating between `mov $imm32, %eax; ret` and `xor %eax, %eax; not %eax;
 * sub $k, %al; ret`, so the instructions themselves change, not only an immediate.
 * The caller executes CPUID before each call: x86's cross-modifying-code rule (Intel SDM vol. 3,
 * 8.1.3) asks the executing processor to serialize before it runs code another processor changed;
 * without it an AMD EPYC ran torn bodies natively and crashed. Under ld-nc the CPUID changes
 * nothing about what is tested: a stale translation of the old code would still be called. */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

enum { ROUNDS = 200 };
#define LOAD(x) (*(volatile uint64_t *)&(x))
#define STORE(x, v) (*(volatile uint64_t *)&(x) = (v))

typedef uint32_t (*fn_t)(void);
static unsigned char *page;
static fn_t fn;
static uint64_t ack, others;

static uint32_t value(uint64_t k) { return (uint32_t)(0x1000 + k * 7919); }

/* Code for round k of phase 2: alternately `mov $v, %eax; ret` and `xor %eax,%eax; not %eax;
 * sub $k, %eax; ret` (returns ~k... written as 8 bytes). */
static uint64_t body(uint64_t k) {
    unsigned char b[8] = {0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0xc3};
    if (k % 2) {
        b[0] = 0xb8; /* mov $imm32, %eax */
        memcpy(b + 1, &(uint32_t){value(k)}, 4);
        b[5] = 0xc3;
    } else {
        b[0] = 0x31; b[1] = 0xc0;             /* xor %eax, %eax */
        b[2] = 0xf7; b[3] = 0xd0;             /* not %eax */
        b[4] = 0x2c; b[5] = (unsigned char)k; /* sub $k8, %al */
        b[6] = 0xc3;
    }
    uint64_t v;
    memcpy(&v, b, 8);
    return v;
}

static uint32_t body_value(uint64_t k) { return k % 2 ? value(k) : (0xffffffffu & ~0xffu) | (uint8_t)(0xff - (uint8_t)k); }

static int phase;

static void *caller(void *arg) {
    (void)arg;
    for (int ph = 1; ph <= 2; ph++) {
        uint64_t seen = 0;
        while (seen < ROUNDS) {
            unsigned a = 0, b, c, d;
            asm volatile("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d) : : "memory");
            uint32_t r = (*(fn_t volatile *)&fn)();
            uint32_t now = ph == 1 ? value(seen) : body_value(seen);
            uint32_t next = ph == 1 ? value(seen + 1) : body_value(seen + 1);
            if (r == next) {
                seen++;
                STORE(ack, seen);
            } else if (r != now) {
                others++;
            }
        }
        /* Wait for the writer to set up the next phase. */
        while (ph == 1 && *(volatile int *)&phase != 2) asm volatile("pause" ::: "memory");
    }
    return NULL;
}

int main(void) {
    page = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return 1;
    memset(page, 0xcc, 4096);
    /* Phase 1: the immediate at page+4 (aligned); the mov starts at page+3. */
    page[3] = 0xb8;
    memcpy(page + 4, &(uint32_t){value(0)}, 4);
    page[8] = 0xc3;
    fn = (fn_t)(page + 3);
    pthread_t t;
    pthread_create(&t, 0, caller, 0);
    for (uint64_t k = 1; k <= ROUNDS; k++) {
        while (LOAD(ack) != k - 1) asm volatile("pause" ::: "memory");
        __atomic_store_n((uint32_t *)(page + 4), value(k), __ATOMIC_RELAXED);
    }
    while (LOAD(ack) != ROUNDS) asm volatile("pause" ::: "memory");
    printf("immediate rewrites: %d seen in order, other values %" PRIu64 "\n", ROUNDS, others);

    /* Phase 2: whole 8-byte bodies at page+64 (aligned), one atomic store each. */
    __atomic_store_n((uint64_t *)(page + 64), body(0), __ATOMIC_RELAXED);
    STORE(ack, 0);
    fn = (fn_t)(page + 64);
    asm volatile("" ::: "memory");
    *(volatile int *)&phase = 2;
    for (uint64_t k = 1; k <= ROUNDS; k++) {
        while (LOAD(ack) != k - 1) asm volatile("pause" ::: "memory");
        __atomic_store_n((uint64_t *)(page + 64), body(k), __ATOMIC_RELAXED);
    }
    pthread_join(t, 0);
    printf("body rewrites: %d seen in order, other values %" PRIu64 "\n", ROUNDS, others);
    return others != 0;
}
