/* The initial process state a loader builds: argv (with spaces, empty and non-ASCII arguments),
 * envp, and the auxiliary vector — AT_PAGESZ, AT_PLATFORM, AT_RANDOM, AT_PHDR/AT_PHNUM/AT_PHENT
 * and AT_ENTRY checked against this program's own ELF header, AT_BASE (0, or the interpreter's
 * ELF header for a dynamic program), AT_EXECFN, AT_SECURE, AT_UID… —
 * and the layout of argv/envp on the initial stack. */
//! arg: hello
//! arg: two words
//! arg:
//! arg: --flag=1
//! arg: ünïcödé ✓
//! arg: tab	inside
//! env: GUEST_ALPHA=first value
//! env: GUEST_EMPTY=
//! env: GUEST_ZETA=last=with=equals
#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern const ElfW(Ehdr) __ehdr_start;
extern char **environ;

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static const char *base(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int main(int argc, char **argv, char **envp) {
    printf("argc %d\n", argc);
    printf("argv[0] basename %s\n", base(argv[0]));
    for (int i = 1; i < argc; i++) printf("argv[%d] = [%s] (%zu bytes)\n", i, argv[i], strlen(argv[i]));
    printf("argv[argc] is NULL %d\n", argv[argc] == NULL);
    printf("envp == environ %d\n", envp == environ);
    /* Sorted, because a runner in front of ld-nc (a shell script, say) may reorder the environment. */
    int n = 0, g = 0;
    const char *guest[64];
    for (char **e = envp; *e; e++) {
        n++;
        if (strncmp(*e, "GUEST_", 6) == 0 && g < 64) guest[g++] = *e;
    }
    qsort(guest, (size_t)g, sizeof guest[0], cmp_str);
    for (int i = 0; i < g; i++) printf("env [%s]\n", guest[i]);
    printf("envp follows argv %d\n", envp == argv + argc + 1);

    printf("AT_PAGESZ %lu sysconf %ld\n", getauxval(AT_PAGESZ), sysconf(_SC_PAGESIZE));
    const char *plat = (const char *)getauxval(AT_PLATFORM);
    printf("AT_PLATFORM %s\n", plat ? plat : "(none)");
    const unsigned char *rnd = (const unsigned char *)getauxval(AT_RANDOM);
    unsigned orsum = 0;
    if (rnd) for (int i = 0; i < 16; i++) orsum |= rnd[i];
    printf("AT_RANDOM present %d nonzero %d\n", rnd != NULL, orsum != 0);
    printf("AT_SECURE %lu\n", getauxval(AT_SECURE));
    printf("AT_CLKTCK %lu\n", getauxval(AT_CLKTCK));
    printf("AT_UID/EUID/GID/EGID match %d\n", getauxval(AT_UID) == getuid() && getauxval(AT_EUID) == geteuid() &&
                                                 getauxval(AT_GID) == getgid() && getauxval(AT_EGID) == getegid());
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    printf("AT_EXECFN basename %s\n", execfn ? base(execfn) : "(none)");
    /* 0 for a static program; a dynamic one's interpreter: its ELF header is mapped there. */
    uintptr_t at_base = getauxval(AT_BASE);
    /* 0 for a static program and for one ld-nc links itself; a dynamic one run by its own ld.so
     * gets the interpreter's ELF header. */
    printf("AT_BASE is 0 or an ELF header %d\n", at_base == 0 || memcmp((const void *)at_base, ELFMAG, SELFMAG) == 0);

    const ElfW(Ehdr) *eh = &__ehdr_start;
    uintptr_t bias = eh->e_type == ET_DYN ? (uintptr_t)eh : 0;
    printf("e_type %s\n", eh->e_type == ET_DYN ? "ET_DYN" : eh->e_type == ET_EXEC ? "ET_EXEC" : "other");
    printf("AT_PHDR matches header %d\n", getauxval(AT_PHDR) == (uintptr_t)eh + eh->e_phoff);
    printf("AT_PHNUM matches header %d\n", getauxval(AT_PHNUM) == eh->e_phnum);
    printf("AT_PHENT %lu\n", getauxval(AT_PHENT));
    printf("AT_ENTRY matches header %d\n", getauxval(AT_ENTRY) == bias + eh->e_entry);
    printf("env count positive %d\n", n > 0);
    return 0;
}
