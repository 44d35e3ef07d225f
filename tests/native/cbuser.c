/* The guest side of the bridge test: a callback passed to a native library as an argument
 * (wrapped by the bridge) and one the guest writes into the library's struct itself (reached by
 * the fault path), each called on the calling thread and on a thread the library creates. Output
 * with puts only, so it runs before the printf family is bridged everywhere. */
#include "cbstore.h"
#include <stdio.h>
static int add(int a, int b) { return a * 100 + b; }
static int sub(int a, int b) { return a - b; }
static void show(const char *what, long v) {
    char buf[96], num[24];
    int n = 0, neg = v < 0;
    unsigned long u = neg ? -(unsigned long)v : (unsigned long)v;
    do num[n++] = '0' + u % 10; while (u /= 10);
    char *p = buf;
    while (*what) *p++ = *what++;
    *p++ = ' ';
    if (neg) *p++ = '-';
    while (n) *p++ = num[--n];
    *p = 0;
    puts(buf);
}
int main(void) {
    struct cb_holder h;
    cb_store(&h, add, 7);
    show("stored:", cb_call(&h, 5));
    show("stored, library thread:", cb_call_in_thread(&h, 6));
    h.fn = sub;
    h.a = 50;
    show("field:", cb_call(&h, 8));
    show("field, library thread:", cb_call_in_thread(&h, 9));
    show("sum4 x100:", (long)(cb_sum4(1.5, 2, 0.25f, 10) * 100));
    return 0;
}
