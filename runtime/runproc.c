/* Run processes: starting a child of this binary for a run (or the scheduler), and naming the
 * signal that killed one. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "runproc.h"

extern char **environ;

char *runproc_self(struct dr_err *err)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        err_set(err, "cannot find this program's path: %s", strerror(errno));
        return NULL;
    }
    self[n] = '\0';
    char *dup = strdup(self);
    if (!dup)
        err_set(err, "out of memory");
    return dup;
}

const char *runproc_signal_name(int sig)
{
    static const struct { int sig; const char *name; } names[] = {
        { SIGSEGV, "SIGSEGV" }, { SIGABRT, "SIGABRT" }, { SIGBUS, "SIGBUS" },
        { SIGFPE, "SIGFPE" },   { SIGILL, "SIGILL" },   { SIGKILL, "SIGKILL" },
        { SIGTERM, "SIGTERM" }, { SIGINT, "SIGINT" },   { SIGQUIT, "SIGQUIT" },
        { SIGPIPE, "SIGPIPE" }, { SIGSYS, "SIGSYS" },   { SIGXCPU, "SIGXCPU" },
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (names[i].sig == sig)
            return names[i].name;
    return "a signal";
}

/* environ without the variable named drop (NULL: all of it); the caller frees the array
 * (not the strings). NULL when out of memory. */
static char **env_without(const char *drop)
{
    size_t n_env = 0;
    while (environ[n_env])
        n_env++;
    char **env = calloc(n_env + 1, sizeof *env);
    size_t k = 0, tl = drop ? strlen(drop) : 0;
    for (size_t i = 0; env && i < n_env; i++)
        if (!tl || strncmp(environ[i], drop, tl) != 0 || environ[i][tl] != '=')
            env[k++] = environ[i];
    return env;
}

pid_t runproc_spawn(const struct runproc_opts *o, const char *const *args, struct dr_err *err)
{
    const char *argv[14];
    int n = 0;
    argv[n++] = o->self;
    if (o->config_path) {
        argv[n++] = "-c";
        argv[n++] = o->config_path;
    }
    argv[n++] = "--log-format";
    argv[n++] = log_get_format() == LOG_JSON ? "json" : "text";
    for (int i = 0; args[i] && n < 13; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (o->stdout_to_stderr)
        posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    /* The child starts with default signal dispositions and nothing blocked. */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char **env = env_without(o->drop_env);
    pid_t pid;
    int rc = env ? posix_spawn(&pid, o->self, &fa, &at, (char *const *)argv, env) : ENOMEM;
    free(env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) {
        err_set(err, "cannot start a run process: %s", strerror(rc));
        return -1;
    }
    return pid;
}
