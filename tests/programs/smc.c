/* Self-modifying and generated code, as JITs produce it: x86 machine code written into an RWX
 * page and called, then overwritten in place and called again (the translator must notice the
 * write and drop its stale translation), an immediate patched 1000 times in a loop, a W^X JIT
 * flipping the page between RW and RX with mprotect, and a page unmapped and mapped again at the
 * same address with different code. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef int64_t (*fn2)(int64_t, int64_t);

/* mov eax, imm32 ; ret */
static void emit_const(unsigned char *p, uint32_t imm) {
    p[0] = 0xb8;
    memcpy(p + 1, &imm, 4);
    p[5] = 0xc3;
}
/* lea rax, [rdi + rsi] ; ret */
static const unsigned char code_add[] = { 0x48, 0x8d, 0x04, 0x37, 0xc3 };
/* mov rax, rdi ; imul rax, rsi ; ret */
static const unsigned char code_mul[] = { 0x48, 0x89, 0xf8, 0x48, 0x0f, 0xaf, 0xc6, 0xc3 };
/* mov rax, rdi ; sub rax, rsi ; ret */
static const unsigned char code_sub[] = { 0x48, 0x89, 0xf8, 0x48, 0x29, 0xf0, 0xc3 };
/* A loop: xor eax,eax ; loop: add rax, rdi ; dec rsi ; jnz loop ; ret  (rdi * rsi for rsi > 0) */
static const unsigned char code_loop[] = { 0x31, 0xc0, 0x48, 0x01, 0xf8, 0x48, 0xff, 0xce, 0x75, 0xf8, 0xc3 };

static fn2 as_fn(unsigned char *p) {
    __builtin___clear_cache((char *)p, (char *)p + 64);
    fn2 f;
    memcpy(&f, &p, sizeof f);
    return f;
}

int main(void) {
    long pg = sysconf(_SC_PAGESIZE);
    unsigned char *rwx = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rwx == MAP_FAILED) { perror("mmap rwx"); return 1; }

    memcpy(rwx, code_add, sizeof code_add);
    printf("add(40, 2) = %lld\n", (long long)as_fn(rwx)(40, 2));
    memcpy(rwx, code_mul, sizeof code_mul);
    printf("after overwrite, mul(40, 2) = %lld\n", (long long)as_fn(rwx)(40, 2));
    memcpy(rwx, code_sub, sizeof code_sub);
    printf("after second overwrite, sub(40, 2) = %lld\n", (long long)as_fn(rwx)(40, 2));

    /* Two functions on one page: rewriting the second must not break the first. */
    memcpy(rwx + 256, code_add, sizeof code_add);
    memcpy(rwx + 512, code_loop, sizeof code_loop);
    printf("loop(7, 6) = %lld, add(7, 6) = %lld\n", (long long)as_fn(rwx + 512)(7, 6), (long long)as_fn(rwx + 256)(7, 6));
    memcpy(rwx + 512, code_sub, sizeof code_sub);
    printf("loop replaced by sub(7, 6) = %lld, add(7, 6) = %lld\n", (long long)as_fn(rwx + 512)(7, 6),
           (long long)as_fn(rwx + 256)(7, 6));

    /* Patch the immediate of one function over and over. */
    uint64_t sum = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        emit_const(rwx + 1024, i * 2654435761u);
        sum += (uint64_t)(uint32_t)as_fn(rwx + 1024)(0, 0);
    }
    uint64_t expect = 0;
    for (uint32_t i = 0; i < 1000; i++) expect += (uint32_t)(i * 2654435761u);
    printf("patched immediate 1000 times: sum matches %d\n", sum == expect);

    /* W^X style: write while RW, execute while RX. */
    unsigned char *wx = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (wx == MAP_FAILED) { perror("mmap rw"); return 1; }
    int64_t results[4];
    const unsigned char *codes[4] = { code_add, code_mul, code_sub, code_loop };
    const size_t lens[4] = { sizeof code_add, sizeof code_mul, sizeof code_sub, sizeof code_loop };
    for (int i = 0; i < 4; i++) {
        if (mprotect(wx, (size_t)pg, PROT_READ | PROT_WRITE) != 0) { perror("mprotect rw"); return 1; }
        memcpy(wx, codes[i], lens[i]);
        if (mprotect(wx, (size_t)pg, PROT_READ | PROT_EXEC) != 0) { perror("mprotect rx"); return 1; }
        results[i] = as_fn(wx)(9, 4);
    }
    printf("w^x results: %lld %lld %lld %lld\n", (long long)results[0], (long long)results[1], (long long)results[2],
           (long long)results[3]);

    /* Unmap and map again at the same address with different code. */
    memcpy(rwx, code_add, sizeof code_add);
    int64_t before = as_fn(rwx)(100, 23);
    if (munmap(rwx, (size_t)pg) != 0) { perror("munmap"); return 1; }
    unsigned char *again = mmap(rwx, (size_t)pg, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (again != rwx) { perror("mmap fixed"); return 1; }
    memcpy(again, code_sub, sizeof code_sub);
    printf("remapped: before %lld after %lld\n", (long long)before, (long long)as_fn(again)(100, 23));
    return 0;
}
