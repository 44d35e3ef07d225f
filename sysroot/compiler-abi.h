/* Entry points that compilers call on their own, which glibc exports but no glibc header declares.
 * abi-gen reads this file with the glibc headers so these symbols get generated records like any
 * other. Only prototypes fixed by the compilers' documented ABIs belong here (GCC object-size
 * checking builtins emitted under _FORTIFY_SOURCE, the stack protector, the Itanium C++ ABI's
 * atexit hooks); anything needing ld-nc's own handling goes to overrides/ instead. */
#include <stddef.h>

void *__memcpy_chk(void *dest, const void *src, size_t len, size_t destlen);
void *__memmove_chk(void *dest, const void *src, size_t len, size_t destlen);
void *__mempcpy_chk(void *dest, const void *src, size_t len, size_t destlen);
void *__memset_chk(void *dest, int c, size_t len, size_t destlen);
char *__stpcpy_chk(char *dest, const char *src, size_t destlen);
char *__stpncpy_chk(char *dest, const char *src, size_t len, size_t destlen);
char *__strcat_chk(char *dest, const char *src, size_t destlen);
char *__strcpy_chk(char *dest, const char *src, size_t destlen);
char *__strncat_chk(char *dest, const char *src, size_t len, size_t destlen);
char *__strncpy_chk(char *dest, const char *src, size_t len, size_t destlen);
void __chk_fail(void);
void __stack_chk_fail(void);
int __cxa_atexit(void (*func)(void *), void *arg, void *dso_handle);
void __cxa_finalize(void *dso_handle);
int __cxa_at_quick_exit(void (*func)(void *), void *dso_handle);
int __cxa_thread_atexit_impl(void (*func)(void *), void *obj, void *dso_handle);
