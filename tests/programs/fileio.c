/* File I/O through the syscall layer: create, write, pwrite, lseek, read, fstat/stat/lstat,
 * rename, symlink/readlink, ftruncate, mkdir, a sorted opendir/readdir listing, unlink and rmdir,
 * plus stdio (fopen/fprintf/fgets) and errno values of failing calls. Works inside the directory
 * given as argv[1] (the harness passes a fresh empty one), or the current directory. */
//! arg: @TMPDIR@
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { printf("opendir %s: errno %d\n", dir, errno); return; }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 64) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_name);
    printf("listing of %s (%d entries):", dir, n);
    for (int i = 0; i < n; i++) {
        char path[512];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (lstat(path, &st) != 0) { printf(" %s(lstat errno %d)", names[i], errno); continue; }
        printf(" %s(%s,%lld)", names[i], S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "link" : S_ISREG(st.st_mode) ? "file" : "other",
               S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_size);
        free(names[i]);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    const char *base = argc > 1 ? argv[1] : ".";
    if (chdir(base) != 0) { printf("chdir failed: errno %d\n", errno); return 1; }
    umask(022);
    if (mkdir("work", 0755) != 0) { printf("mkdir failed: errno %d\n", errno); return 1; }

    int fd = open("work/data.bin", O_CREAT | O_EXCL | O_RDWR, 0640);
    if (fd < 0) { printf("open failed: errno %d\n", errno); return 1; }
    char buf[8192];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)(i * 7 + 3);
    ssize_t w = write(fd, buf, sizeof buf);
    printf("write %zd\n", w);
    long long end = lseek(fd, 0, SEEK_END);
    long long cur = lseek(fd, 100, SEEK_SET);
    printf("lseek end %lld cur-after-seek %lld\n", end, cur);
    char rb[64];
    ssize_t r = read(fd, rb, sizeof rb);
    printf("read %zd at 100: first %d last %d\n", r, (unsigned char)rb[0], (unsigned char)rb[63]);
    printf("pwrite %zd\n", pwrite(fd, "HELLO", 5, 8190));
    ssize_t pr = pread(fd, rb, 10, 8188);
    printf("pread %zd: ", pr);
    for (int i = 0; i < 7; i++) printf("%02x", (unsigned char)rb[i]);
    printf("\n");
    struct stat st;
    fstat(fd, &st);
    printf("fstat size %lld mode %o regular %d nlink %lu blksize-nonzero %d\n", (long long)st.st_size,
           (unsigned)(st.st_mode & 07777), S_ISREG(st.st_mode), (unsigned long)st.st_nlink, st.st_blksize > 0);
    printf("ftruncate %d\n", ftruncate(fd, 5000));
    fstat(fd, &st);
    printf("size after truncate %lld\n", (long long)st.st_size);
    lseek(fd, 10000, SEEK_SET);
    if (write(fd, "Z", 1) != 1) printf("write Z failed\n");
    fstat(fd, &st);
    printf("size after sparse write %lld\n", (long long)st.st_size);
    lseek(fd, 6000, SEEK_SET);
    if (read(fd, rb, 4) != 4) printf("read hole failed\n");
    printf("hole reads zeros %d\n", rb[0] == 0 && rb[3] == 0);
    close(fd);

    FILE *f = fopen("work/text.txt", "w");
    for (int i = 1; i <= 50; i++) fprintf(f, "line %d: %s %.3f\n", i, i % 2 ? "odd" : "even", i / 7.0);
    fclose(f);
    f = fopen("work/text.txt", "r");
    char line[128];
    int lines = 0;
    long sum = 0;
    while (fgets(line, sizeof line, f)) { lines++; sum += (long)strlen(line); if (lines == 37) printf("line 37 = %s", line); }
    printf("lines %d bytes %ld ftell %ld\n", lines, sum, ftell(f));
    fclose(f);

    printf("rename %d\n", rename("work/text.txt", "work/renamed.txt"));
    printf("symlink %d\n", symlink("renamed.txt", "work/link"));
    char target[64] = { 0 };
    ssize_t tl = readlink("work/link", target, sizeof target - 1);
    printf("readlink %zd %s\n", tl, target);
    int sr = stat("work/link", &st);
    printf("stat via link %d size %lld\n", sr, (long long)st.st_size);
    int a1 = access("work/renamed.txt", R_OK);
    int a2 = access("work/missing", F_OK);
    printf("access R_OK %d missing %d\n", a1, a2);
    mkdir("work/sub", 0700);
    for (int i = 0; i < 5; i++) {
        char p[64];
        snprintf(p, sizeof p, "work/sub/f%d", 4 - i);
        int fd2 = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (write(fd2, p, strlen(p)) != (ssize_t)strlen(p)) printf("write %s failed\n", p);
        close(fd2);
    }
    list("work");
    list("work/sub");

    int rc = open("work/nope/x", O_RDONLY);
    printf("open missing -> %d errno %d (ENOENT=%d)\n", rc, errno, ENOENT);
    rc = mkdir("work", 0755);
    printf("mkdir existing -> %d errno %d (EEXIST=%d)\n", rc, errno, EEXIST);
    rc = rmdir("work/sub");
    printf("rmdir non-empty -> %d errno %d (ENOTEMPTY=%d)\n", rc, errno, ENOTEMPTY);
    ssize_t rr = read(999, rb, 1);
    printf("read bad fd -> %zd errno %d (EBADF=%d)\n", rr, errno, EBADF);

    for (int i = 0; i < 5; i++) {
        char p[64];
        snprintf(p, sizeof p, "work/sub/f%d", i);
        unlink(p);
    }
    int c1 = rmdir("work/sub");
    int c2 = unlink("work/link");
    int c3 = unlink("work/renamed.txt");
    int c4 = unlink("work/data.bin");
    int c5 = rmdir("work");
    printf("cleanup %d %d %d %d %d\n", c1, c2, c3, c4, c5);
    list(".");
    char cwd[4096];
    printf("getcwd ok %d\n", getcwd(cwd, sizeof cwd) != NULL);
    return 0;
}
