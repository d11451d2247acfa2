/* `dagrun serve`: the command: its options and config, the DAGs it reads, start and stop. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "runproc.h"
#include "serve.h"

int64_t serve_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- config: serve.* ---- */

static int cfg_str(const char *file, const char *key, const json_t *v, char **out,
                   struct dr_err *err)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_string(v) || !json_string_value(v)[0])
        return err_set(err, "%s: serve.%s: expected a non-empty string", file, key);
    free(*out);
    *out = strdup(json_string_value(v));
    return *out ? 0 : err_set(err, "out of memory");
}

/* Reads config.json's "serve" object (checked here, key by key) over the defaults. */
static int serve_config_read(struct cli *c, struct serve_config *sc, struct dr_err *err)
{
    const char *file = c->cfg->path ? c->cfg->path : "config";
    sc->listen = strdup("127.0.0.1:8080");
    sc->max_connections = 1024;
    if (!sc->listen)
        return err_set(err, "out of memory");
    const json_t *obj = c->cfg->serve;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        int rc = 0;
        if (strcmp(k, "listen") == 0)
            rc = cfg_str(file, k, v, &sc->listen, err);
        else if (strcmp(k, "token_env") == 0)
            rc = cfg_str(file, k, v, &sc->token_env, err);
        else if (strcmp(k, "tls_cert") == 0)
            rc = cfg_str(file, k, v, &sc->tls_cert, err);
        else if (strcmp(k, "tls_key") == 0)
            rc = cfg_str(file, k, v, &sc->tls_key, err);
        else if (strcmp(k, "protect_metrics") == 0) {
            if (!json_is_boolean(v))
                return err_set(err, "%s: serve.protect_metrics: expected true or false", file);
            sc->protect_metrics = json_is_true(v);
        } else if (strcmp(k, "max_connections") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 60000)
                return err_set(err, "%s: serve.max_connections: expected an integer in 1..60000",
                               file);
            sc->max_connections = (unsigned)json_integer_value(v);
        } else
            return err_set(err, "%s: serve.%s: unknown key", file, k);
        if (rc < 0)
            return -1;
    }
    if (!sc->tls_cert != !sc->tls_key)
        return err_set(err, "%s: serve: tls_cert and tls_key go together", file);
    return 0;
}

static void serve_config_free(struct serve_config *sc)
{
    free(sc->listen);
    free(sc->token_env);
    free(sc->tls_cert);
    free(sc->tls_key);
}

/* True when ADDR of "ADDR:PORT" is a loopback address (127.0.0.0/8, ::1, localhost). */
static bool listen_is_loopback(const char *listen)
{
    const char *colon = strrchr(listen, ':');
    if (!colon)
        return false;
    char host[128];
    size_t n = (size_t)(colon - listen);
    if (n >= sizeof host)
        return false;
    memcpy(host, listen, n);
    host[n] = '\0';
    if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
        memmove(host, host + 1, n - 2);
        host[n - 2] = '\0';
    }
    if (strcmp(host, "localhost") == 0)
        return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return memcmp(&a6, &in6addr_loopback, sizeof a6) == 0;
    return false;
}

/* ---- DAGs ---- */

static void serve_dag_clear(struct serve_dag *d)
{
    free(d->path);
    dag_free(d->dag);
    free(d->error);
}

void serve_dags_refresh(struct serve *s)
{
    int64_t now = serve_now_ms();
    if (s->dags_scanned_ms && now - s->dags_scanned_ms < 2000)
        return;
    s->dags_scanned_ms = now;
    struct dr_err err;
    err_clear(&err);
    char **paths = dag_list_files(s->c->cfg->dags_dir, &err);
    if (!paths) {
        log_error("%s", err.msg);
        return;
    }
    size_t n = 0;
    while (paths[n])
        n++;
    struct serve_dag *next = calloc(n ? n : 1, sizeof *next);
    if (!next) {
        dag_free_list(paths);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        int64_t mt = stat(paths[i], &sb) == 0
                         ? (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec : 0;
        struct serve_dag *old = NULL;
        for (size_t k = 0; k < s->n_dags && !old; k++)
            if (s->dags[k].path && strcmp(s->dags[k].path, paths[i]) == 0)
                old = &s->dags[k];
        if (old && old->mtime_ns == mt) {
            next[i] = *old;
            memset(old, 0, sizeof *old);
            continue;
        }
        next[i].path = strdup(paths[i]);
        next[i].mtime_ns = mt;
        err_clear(&err);
        next[i].dag = dag_load(paths[i], cli_plugins(s->c), &err);
        if (!next[i].dag) {
            next[i].error = strdup(err.msg);
            log_error("%s", err.msg);
        }
    }
    for (size_t k = 0; k < s->n_dags; k++)
        serve_dag_clear(&s->dags[k]);
    free(s->dags);
    s->dags = next;
    s->n_dags = n;
    dag_free_list(paths);
}

struct dag *serve_dag_find(struct serve *s, const char *dag_id)
{
    serve_dags_refresh(s);
    for (size_t i = 0; i < s->n_dags; i++)
        if (s->dags[i].dag && strcmp(s->dags[i].dag->dag_id, dag_id) == 0)
            return s->dags[i].dag;
    return NULL;
}

/* ---- the command ---- */

static struct serve *g_serve;   /* for the signal handler only */

static void on_signal(int sig)
{
    (void)sig;
    if (g_serve)
        g_serve->stop = 1;
}

static const char serve_usage[] =
    "usage: dagrun serve [--listen ADDR:PORT] [--no-scheduler]\n"
    "Serves the Airflow-compatible REST API (/api/v2), live run progress (Server-Sent\n"
    "Events), the web page (/), /health, /health/queue, /health/sources and /metrics, and\n"
    "runs the scheduler. Triggered and scheduled runs execute in processes of their own.\n"
    "  --listen ADDR:PORT   where to listen (config serve.listen, default 127.0.0.1:8080)\n"
    "  --no-scheduler       fire no scheduled runs (a separate `dagrun scheduler` does);\n"
    "                       runs triggered through this server still run\n"
    "The API token is read from the environment variable that serve.token_env names;\n"
    "without one, serve listens only on a loopback address.\n"
    "SIGTERM or SIGINT: stop answering, hand running runs back as queued, exit 0.\n";

int cmd_serve(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, serve_usage))
        return EXIT_OK;
    const char *listen = NULL;
    bool no_scheduler = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen = argv[++i];
        else if (strcmp(argv[i], "--no-scheduler") == 0)
            no_scheduler = true;
        else {
            fprintf(stderr, "serve: unexpected argument \"%s\"\n%s", argv[i], serve_usage);
            return EXIT_BAD_INPUT;
        }
    }
    struct dr_err err;
    err_clear(&err);
    int rc = EXIT_BAD_INPUT;
    struct serve *s = calloc(1, sizeof *s);
    if (!s)
        return EXIT_FAILED;
    s->c = c;
    s->scheduler = !no_scheduler;
    s->started_at = (int64_t)time(NULL);
    pthread_mutex_init(&s->db_lock, NULL);
    pthread_mutex_init(&s->dag_lock, NULL);
    pthread_mutex_init(&s->stat_lock, NULL);
    if (serve_config_read(c, &s->cfg, &err) < 0)
        goto fail;
    if (listen) {
        free(s->cfg.listen);
        if (!(s->cfg.listen = strdup(listen)))
            goto fail;
    }
    if (s->cfg.token_env) {
        const char *t = getenv(s->cfg.token_env);
        if (!t || !t[0]) {
            err_set(&err, "serve: the API token variable %s is not set", s->cfg.token_env);
            err_hint(&err, "export %s=<a long random token>, or remove serve.token_env",
                     s->cfg.token_env);
            goto fail;
        }
        s->token = strdup(t);
        s->token_len = strlen(t);
    }
    if (!s->token && !listen_is_loopback(s->cfg.listen)) {
        err_set(&err, "serve: refusing to listen on %s without an API token", s->cfg.listen);
        err_hint(&err, "set serve.token_env to the name of an environment variable that holds "
                       "the token, or listen on 127.0.0.1");
        goto fail;
    }
    if (!c->cfg->database_url || !c->cfg->database_url[0]) {
        err_set(&err, "no database configured");
        err_hint(&err, "set DATABASE_URL or database_url in config.json");
        goto fail;
    }
    if (!(s->self = runproc_self(&err))) {
        err_prefix(&err, "serve");
        rc = EXIT_FAILED;
        goto fail;
    }

    /* Many idle clients (and event streams) each hold a descriptor. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    g_serve = s;
    cli_on_stop_signals(on_signal);

    pthread_mutex_lock(&s->dag_lock);
    serve_dags_refresh(s);
    pthread_mutex_unlock(&s->dag_lock);

    rc = EXIT_FAILED;
    if (serve_runs_init(s, &err) < 0 || serve_sse_start(s, &err) < 0)
        goto fail;
    if (serve_http_start(s, &err) < 0) {
        serve_sse_stop(s);
        serve_sse_free(s);
        serve_runs_stop(s);
        goto fail;
    }
    /* The port actually bound (for --listen ADDR:0) goes into the line. */
    char where[160];
    snprintf(where, sizeof where, "%.*s:%u", (int)(strrchr(s->cfg.listen, ':') - s->cfg.listen),
             s->cfg.listen, serve_http_port(s));
    log_info("serving on %s%s%s", where, s->cfg.tls_cert ? " (TLS)" : "",
             s->scheduler ? "" : " (no scheduler)");
    while (!s->stop) {
        serve_runs_reap(s);
        nanosleep(&(struct timespec){ 0, 200 * 1000000L }, NULL);
    }
    log_info("stopping: running runs are handed back as queued");
    serve_http_stop(s);
    serve_sse_stop(s);
    serve_sse_free(s);
    serve_runs_stop(s);
    rc = EXIT_OK;
    log_info("serve stopped");
    goto out;
fail:
    err_print(&err);
out:
    g_serve = NULL;
    serve_db_close_all(s);
    for (size_t i = 0; i < s->n_dags; i++)
        serve_dag_clear(&s->dags[i]);
    free(s->dags);
    serve_config_free(&s->cfg);
    if (s->token) {
        memset(s->token, 0, s->token_len);
        free(s->token);
    }
    free(s->self);
    pthread_mutex_destroy(&s->db_lock);
    pthread_mutex_destroy(&s->dag_lock);
    pthread_mutex_destroy(&s->stat_lock);
    free(s);
    return rc;
}
