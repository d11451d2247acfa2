/* A DAG's failure hook (on_failure): a command run with posix_spawnp and the run's facts in
 * its environment, never a shell string, and/or a JSON POST to a webhook; both bounded by a
 * timeout, and neither able to change the run. */
#include "hook.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "date.h"
#include "duration.h"
#include "envexpand.h"
#include "log.h"

extern char **environ;

enum { HOOK_MAX_ARGS = 256 };

/* ---- parsing ---- */

static struct hook *parse_fail(struct hook *h, struct dr_err *err, const char *path,
                               const struct ynode *n, const char *msg)
{
    hook_free(h);
    yamltree_error(err, path, n->line, n->col, "on_failure: %s", msg);
    return NULL;
}

struct hook *hook_parse(const char *path, const struct ynode *v, struct dr_err *err)
{
    char msg[512];
    struct hook *h = calloc(1, sizeof *h);
    if (!h) {
        err_set(err, "%s: out of memory", path);
        return NULL;
    }
    h->timeout_ms = HOOK_TIMEOUT_MS;
    if (v->kind != Y_MAP) {
        snprintf(msg, sizeof msg, "expected a mapping with command and/or webhook, got %s",
                 yamltree_kind_name(v));
        return parse_fail(h, err, path, v, msg);
    }
    for (size_t i = 0; i < v->n; i += 2) {
        const struct ynode *k = v->kids[i], *x = v->kids[i + 1];
        if (strcmp(k->text, "command") == 0 && !h->argv) {
            if (x->kind != Y_SEQ || x->n == 0)
                return parse_fail(h, err, path, x,
                                  "command: expected a non-empty list of arguments, e.g. "
                                  "[/usr/local/bin/notify, --channel, ops] (no shell is used)");
            if (x->n > HOOK_MAX_ARGS) {
                snprintf(msg, sizeof msg, "command: %zu arguments, at most %d", x->n,
                         HOOK_MAX_ARGS);
                return parse_fail(h, err, path, x, msg);
            }
            if (!(h->argv = calloc(x->n + 1, sizeof *h->argv)))
                return parse_fail(h, err, path, x, "out of memory");
            for (size_t j = 0; j < x->n; j++) {
                const struct ynode *a = x->kids[j];
                if (a->kind != Y_SCALAR || yamltree_is_null(a) || (j == 0 && !a->text[0]))
                    return parse_fail(h, err, path, a, "command: each argument must be a string "
                                                       "(the first one not empty)");
                if (!(h->argv[j] = strdup(a->text)))
                    return parse_fail(h, err, path, a, "out of memory");
            }
        } else if (strcmp(k->text, "webhook") == 0 && !h->webhook) {
            if (x->kind != Y_SCALAR || yamltree_is_null(x) ||
                (strncmp(x->text, "http://", 7) != 0 && strncmp(x->text, "https://", 8) != 0 &&
                 strncmp(x->text, "${", 2) != 0))
                return parse_fail(h, err, path, x,
                                  "webhook: expected an http:// or https:// URL (${VAR} takes "
                                  "a secret from the environment)");
            const char *why = NULL;
            if (envexpand_vars(x->text, NULL, NULL, &why) < 0) {
                snprintf(msg, sizeof msg, "webhook: %s", why);
                return parse_fail(h, err, path, x, msg);
            }
            if (!(h->webhook = strdup(x->text)))
                return parse_fail(h, err, path, x, "out of memory");
        } else if (strcmp(k->text, "timeout") == 0) {
            struct dr_err e;
            err_clear(&e);
            if (x->kind != Y_SCALAR || duration_parse(x->text, &h->timeout_ms, &e) < 0 ||
                h->timeout_ms <= 0 || h->timeout_ms > 3600000)
                return parse_fail(h, err, path, x, "timeout: expected a duration from 1ms to 1h, "
                                                   "e.g. 30s");
        } else {
            snprintf(msg, sizeof msg, "unknown or repeated key \"%s\" (takes: command, webhook, "
                     "timeout)", k->text);
            return parse_fail(h, err, path, k, msg);
        }
    }
    if (!h->argv && !h->webhook)
        return parse_fail(h, err, path, v, "give a command, a webhook or both");
    return h;
}

void hook_free(struct hook *h)
{
    if (!h)
        return;
    for (char **a = h->argv; a && *a; a++)
        free(*a);
    free(h->argv);
    free(h->webhook);
    free(h);
}

/* ---- the event's fields ---- */

/* The fields as name/value pairs, for the environment and the JSON body. */
struct fields {
    const char *name[6], *value[6];
    char date[32];
};

static void event_fields(const struct hook_event *ev, struct fields *f)
{
    date_format_instant(ev->logical_date, f->date, sizeof f->date);
    const char *names[] = { "run_id", "dag_id", "run_type", "state", "error", "logical_date" };
    const char *values[] = { ev->run_id, ev->dag_id, ev->run_type ? ev->run_type : "",
                             run_state_name(ev->state), ev->error ? ev->error : "", f->date };
    for (int i = 0; i < 6; i++) {
        f->name[i] = names[i];
        f->value[i] = values[i] ? values[i] : "";
    }
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the command ---- */

/* environ without its DAGRUN_* entries, then the event's DAGRUN_* variables: a new
 * NULL-terminated array (free it); its strings from index *first_own on are new (free them),
 * the ones before are environ's. NULL when out of memory. */
static char **hook_env(const struct fields *f, size_t *first_own)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = calloc(n + 7, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "DAGRUN_", 7) != 0)
            env[k++] = environ[i];
    *first_own = k;
    for (int i = 0; i < 6; i++) {
        size_t len = strlen(f->name[i]) + strlen(f->value[i]) + 9;
        char *s = malloc(len);
        if (!s)
            break;
        int w = snprintf(s, len, "DAGRUN_%s=%s", f->name[i], f->value[i]);
        for (char *p = s + 7; w > 0 && *p && *p != '='; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        env[k++] = s;
    }
    return env;
}

static void run_command(const struct hook *h, const struct hook_event *ev, const struct fields *f)
{
    size_t own = 0;
    char **env = hook_env(f, &own);
    if (!env) {
        log_msg(DR_LOG_ERROR, ev->run_id, NULL, NULL, "on_failure command: out of memory");
        return;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    /* stdin from /dev/null, stdout to our stderr (dagrun's stdout carries its reports). */
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
    /* Its own process group, so that a timeout kills what it started too; default signal
     * dispositions and an empty mask whatever dagrun has set. */
    sigset_t none, defs;
    sigemptyset(&none);
    sigemptyset(&defs);
    sigaddset(&defs, SIGINT);
    sigaddset(&defs, SIGTERM);
    sigaddset(&defs, SIGPIPE);
    sigaddset(&defs, SIGCHLD);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &defs);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int e = posix_spawnp(&pid, h->argv[0], &fa, &at, h->argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    for (size_t i = own; env[i]; i++)
        free(env[i]);
    free(env);
    if (e != 0) {
        log_msg(DR_LOG_ERROR, ev->run_id, NULL, NULL, "on_failure command %s: %s", h->argv[0],
                strerror(e));
        return;
    }
    int64_t deadline = mono_ms() + h->timeout_ms;
    int status = 0;
    pid_t w;
    while ((w = waitpid(pid, &status, WNOHANG)) == 0 && mono_ms() < deadline)
        nanosleep(&(struct timespec){ 0, 20 * 1000000L }, NULL);
    if (w == 0) {
        kill(-pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        char d[32];
        duration_format(h->timeout_ms, d, sizeof d);
        log_msg(DR_LOG_ERROR, ev->run_id, NULL, NULL,
                "on_failure command %s: no exit after %s: killed", h->argv[0], d);
    } else if (w < 0) {
        log_msg(DR_LOG_ERROR, ev->run_id, NULL, NULL, "on_failure command %s: %s", h->argv[0],
                strerror(errno));
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        log_msg(DR_LOG_INFO, ev->run_id, NULL, NULL, "on_failure command %s: done", h->argv[0]);
    } else if (WIFEXITED(status)) {
        log_msg(DR_LOG_ERROR, ev->run_id, NULL, NULL, "on_failure command %s: exit code %d",
                h->argv[0], WEXITSTATUS(status));
    } else {
        log_msg(DR_LOG_ERROR, ev->run_id, NULL, NULL, "on_failure command %s: killed by signal %d",
                h->argv[0], WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
}

/* ---- the webhook ---- */

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* The URL is never logged: it may carry a token (Slack, Teams and the like put it there). */
static void post_webhook(const struct hook *h, const struct hook_event *ev, const struct fields *f)
{
    char unset[256] = "";
    const char *why = NULL;
    char *url = envexpand(h->webhook, unset, sizeof unset, &why);
    if (!url) {
        if (unset[0])
            log_msg(DR_LOG_ERROR, ev->run_id, NULL, NULL,
                    "on_failure webhook: environment variable %s is not set", unset);
        else
            log_msg(DR_LOG_ERROR, ev->run_id, NULL, NULL, "on_failure webhook: %s",
                    why ? why : "out of memory");
        return;
    }
    json_t *o = json_object();
    for (int i = 0; o && i < 6; i++)
        json_object_set_new(o, f->name[i], json_string(f->value[i]));
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (!body || !c || !hdr) {
        log_msg(DR_LOG_ERROR, ev->run_id, NULL, NULL, "on_failure webhook: out of memory");
        goto out;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");   /* also after ${VAR} */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "dagrun");
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK)
        /* curl's message may quote the URL: only its code's text is logged. */
        log_msg(DR_LOG_ERROR, ev->run_id, NULL, NULL, "on_failure webhook: %s",
                curl_easy_strerror(rc));
    else if (status >= 300)
        log_msg(DR_LOG_ERROR, ev->run_id, NULL, NULL, "on_failure webhook: HTTP %ld", status);
    else
        log_msg(DR_LOG_INFO, ev->run_id, NULL, NULL, "on_failure webhook: HTTP %ld", status);
out:
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    free(body);
    explicit_bzero(url, strlen(url));
    free(url);
}

void hook_fire(const struct hook *h, const struct hook_event *ev)
{
    if (!h || (ev->state != RUN_FAILED && ev->state != RUN_PARTIAL))
        return;
    struct fields f;
    event_fields(ev, &f);
    if (h->argv)
        run_command(h, ev, &f);
    if (h->webhook)
        post_webhook(h, ev, &f);
}
