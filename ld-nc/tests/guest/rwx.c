/* RWX code rewritten by a store and by the kernel (read() into it): both must be seen by the next
 * call (self-modifying-code watch and its release before syscalls). Prints "1 6 2 3". */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>
int main(void) {
    unsigned char *p = mmap(0, 4096, PROT_READ|PROT_WRITE|PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
    unsigned char code[] = {0xb8, 1, 0, 0, 0, 0xc3}; /* mov eax,1; ret */
    memcpy(p, code, sizeof code);
    int (*f)(void) = (int (*)(void))p;
    int a = f();
    /* the kernel writes new code into the (now watched) page */
    int fds[2]; pipe(fds);
    unsigned char code2[] = {0xb8, 2, 0, 0, 0, 0xc3};
    write(fds[1], code2, sizeof code2);
    ssize_t n = read(fds[0], p, sizeof code2);
    int b = f();
    p[1] = 3;
    int c = f();
    printf("%d %zd %d %d\n", a, n, b, c);
    return 0;
}
