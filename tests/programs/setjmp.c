/* setjmp/longjmp: non-local exits from nested frames, values preserved in volatile locals,
 * longjmp(env, 0) turning into 1, and sigsetjmp/siglongjmp restoring the signal mask.
 * glibc mangles the saved SP/PC with a per-process guard (PTR_MANGLE, from %fs:0x30), so this
 * also checks that the guest's thread pointer is set up consistently. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>

static jmp_buf env;
static int depth_reached;

__attribute__((noipa)) static void dive(int depth, int target) {
    volatile char pad[256];
    pad[0] = (char)depth;
    depth_reached = depth + pad[0] - pad[0];
    if (depth >= target) longjmp(env, depth * 10);
    if (depth < 1000) dive(depth + 1, target);
}

__attribute__((noipa)) static void jump_zero(void) { longjmp(env, 0); }

int main(void) {
    for (volatile int target = 0; target < 5; target++) {
        volatile int counter = 100 + target;
        int r = setjmp(env);
        if (r == 0) {
            counter++;
            dive(0, target * 3);
            printf("not reached\n");
        } else {
            printf("target %d: setjmp returned %d, depth %d, counter %d\n", target, r, depth_reached, counter);
        }
    }
    int r = setjmp(env);
    if (r == 0) jump_zero();
    printf("longjmp(env, 0) made setjmp return %d\n", r);

    /* Chained: a jump back into a loop several times. */
    volatile int rounds = 0;
    if (setjmp(env) < 3) {
        rounds++;
        if (rounds < 5) longjmp(env, rounds);
    }
    printf("rounds %d\n", rounds);

    sigjmp_buf senv;
    sigset_t set, cur;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    if (sigsetjmp(senv, 1) == 0) {
        sigprocmask(SIG_BLOCK, &set, NULL);
        sigprocmask(SIG_SETMASK, NULL, &cur);
        printf("inside: SIGUSR1 blocked = %d\n", sigismember(&cur, SIGUSR1));
        siglongjmp(senv, 7);
    }
    sigprocmask(SIG_SETMASK, NULL, &cur);
    printf("after siglongjmp: SIGUSR1 blocked = %d\n", sigismember(&cur, SIGUSR1));
    return 0;
}
