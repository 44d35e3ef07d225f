/* A native test library for the bridge: it keeps a guest callback in a struct and calls it
 * later, from the calling thread and from a thread of its own. */
#ifndef CBSTORE_H
#define CBSTORE_H
struct cb_holder {
    int (*fn)(int, int);
    int a;
};
/* Store `fn` (passed as an argument: the bridge wraps it) and `a` in `h`. */
void cb_store(struct cb_holder *h, int (*fn)(int, int), int a);
/* h->fn(h->a, b): whatever `fn` holds, stored by cb_store or written by the caller itself. */
int cb_call(const struct cb_holder *h, int b);
/* The same call made on a new thread of the library's own. */
int cb_call_in_thread(const struct cb_holder *h, int b);
/* Sum of a, b, c, d as doubles: a plain bridged call with floating-point arguments. */
double cb_sum4(double a, int b, float c, long d);
#endif
