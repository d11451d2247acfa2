/* runproc: runs a command and reports its wall time, CPU time and peak RSS (wait4), for make bench.
 *
 *   runproc OUT -- CMD [ARGS...]
 * Runs CMD with the caller's stdin/stdout/stderr, waits for it with wait4 and writes one JSON
 * object to OUT: {"rc":N,"wall_s":S,"user_s":S,"sys_s":S,"maxrss_kb":N}. Exits with CMD's exit
 * status (128+signal when killed), or 127 when CMD cannot be started. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: runproc OUT -- CMD [ARGS...]\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("runproc: fork");
        return 127;
    }
    if (pid == 0) {
        execvp(argv[3], &argv[3]);
        fprintf(stderr, "runproc: cannot run %s: %s\n", argv[3], strerror(errno));
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("runproc: wait4");
            return 127;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        fprintf(stderr, "runproc: cannot write %s: %s\n", argv[1], strerror(errno));
        return 127;
    }
    fprintf(f, "{\"rc\":%d,\"wall_s\":%.6f,\"user_s\":%.6f,\"sys_s\":%.6f,\"maxrss_kb\":%ld}\n", rc,
            wall, tv_s(ru.ru_utime), tv_s(ru.ru_stime), ru.ru_maxrss);
    fclose(f);
    return rc;
}
