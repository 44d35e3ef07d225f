#ifndef BENCHLIB_H
#define BENCHLIB_H
int bl_nop(void);
long bl_add6(long a, long b, long c, long d, long e, long f);
double bl_fma3(double a, double b, double c);
#endif
