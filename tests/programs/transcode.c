//! arg: @TMPDIR@
/* The built-in demo (tests/demo/transcode.c) as a test: make 5 s of test audio in the working
 * directory (the fresh @TMPDIR@), transcode it, and print the summary with the output's FNV-1a
 * hash, so the demo's result is checked on both hosts. */
#define main transcode_main
#include "../demo/transcode.c"
#undef main

int main(void) {
    char *mk[] = {"transcode", "make", "in.wav", "5", 0};
    char *rn[] = {"transcode", "run", "in.wav", "out.wav", 0};
    int r = transcode_main(4, mk);
    return r ? r : transcode_main(4, rn);
}
