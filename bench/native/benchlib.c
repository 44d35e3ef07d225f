/* The native side of bench/bridge.sh: functions that do (almost) nothing, so a loop calling them
 * measures the cost of the call itself. */
#include "benchlib.h"
int bl_nop(void) { return 1; }
long bl_add6(long a, long b, long c, long d, long e, long f) { return a + b + c + d + e + f; }
double bl_fma3(double a, double b, double c) { return a * b + c; }
