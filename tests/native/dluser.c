/* The guest side of the dlopen test: dlopen of a guest plugin (its initialiser runs, its functions
 * are found by dlsym and called), dlsym of a native function through a native library's handle
 * and through RTLD_DEFAULT, a missing symbol, dladdr. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        printf("dlopen: %s\n", dlerror());
        return 1;
    }
    int (*next)(void) = (int (*)(void))dlsym(h, "plugin_next");
    const char *(*name)(void) = (const char *(*)(void))dlsym(h, "plugin_name");
    size_t (*len)(const char *) = (size_t (*)(const char *))dlsym(h, "plugin_len");
    if (!next || !name || !len) return 3;
    printf("%s\n", name());
    int a = next();
    int b = next();
    printf("next: %d %d\n", a, b);
    printf("len: %zu\n", len("abcdef"));
    printf("missing: %s\n", dlsym(h, "nope") ? "found" : "null");
    void *m = dlopen("libm.so.6", RTLD_NOW);
    double (*cosp)(double) = m ? (double (*)(double))dlsym(m, "cos") : 0;
    printf("cos(0) = %.1f\n", cosp ? cosp(0.0) : -1.0);
    size_t (*sl)(const char *) = (size_t (*)(const char *))dlsym(RTLD_DEFAULT, "strlen");
    printf("strlen via RTLD_DEFAULT: %zu\n", sl ? sl("hello") : 0);
    Dl_info di;
    printf("dladdr: %d\n", dladdr((void *)next, &di) != 0 && di.dli_fbase != 0);
    return 0;
}
