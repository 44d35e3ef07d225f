/* A guest plugin for the bridge test: loaded by dlopen, with an initialiser and a libc call. */
#include <string.h>
static int counter;
__attribute__((constructor)) static void init(void) { counter = 40; }
int plugin_next(void) { return ++counter; }
const char *plugin_name(void) { return "plugin"; }
size_t plugin_len(const char *s) { return strlen(s); }
