/* `dagrun serve`: run processes: one child process of this binary per run, the scheduler's
 * process, and what the server records when one of them dies. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "runproc.h"
#include "serve.h"

extern char **environ;

struct child {
    pid_t pid;
    char run_id[160];           /* empty for the scheduler */
    struct child *next;
};

struct serve_runs {
    pthread_mutex_t lock;       /* guards the list */
    struct child *head;         /* protected by lock */
    pid_t scheduler;            /* 0 when not running; main thread only */
    int64_t scheduler_next_ms;  /* when to (re)start it; main thread only */
};

int serve_runs_init(struct serve *s, struct dr_err *err)
{
    struct serve_runs *rs = calloc(1, sizeof *rs);
    if (!rs)
        return err_set(err, "out of memory");
    pthread_mutex_init(&rs->lock, NULL);
    s->runs = rs;
    return 0;
}

/* Starts `dagrun [-c CONFIG] ARGS...`; its stdout goes to our stderr. The run processes get
 * this environment without the API token: plugins never see it. */
static pid_t spawn(struct serve *s, const char *const *args, struct dr_err *err)
{
    const struct runproc_opts o = { .self = s->self, .config_path = s->c->config_path,
                                    .stdout_to_stderr = true, .drop_env = s->cfg.token_env };
    return runproc_spawn(&o, args, err);
}

int serve_runs_start(struct serve *s, const char *run_id, struct dr_err *err)
{
    struct child *ch = calloc(1, sizeof *ch);
    if (!ch)
        return err_set(err, "out of memory");
    snprintf(ch->run_id, sizeof ch->run_id, "%s", run_id);
    const char *args[] = { "_run", run_id, NULL };
    /* Under the lock, so that the reaper never sees this pid before it is listed. */
    pthread_mutex_lock(&s->runs->lock);
    ch->pid = spawn(s, args, err);
    if (ch->pid > 0) {
        ch->next = s->runs->head;
        s->runs->head = ch;
    }
    pid_t pid = ch->pid; /* once unlocked, ch is the reaper's to free */
    pthread_mutex_unlock(&s->runs->lock);
    if (pid <= 0) {
        free(ch);
        return -1;
    }
    log_msg(DR_LOG_INFO, run_id, NULL, NULL, "run process %d started", (int)pid);
    return 0;
}

bool serve_runs_interrupt(struct serve *s, const char *run_id)
{
    bool found = false;
    pthread_mutex_lock(&s->runs->lock);
    for (struct child *ch = s->runs->head; ch; ch = ch->next)
        if (ch->run_id[0] && strcmp(ch->run_id, run_id) == 0) {
            kill(ch->pid, SIGINT);
            found = true;
        }
    pthread_mutex_unlock(&s->runs->lock);
    return found;
}

size_t serve_runs_count(struct serve *s)
{
    size_t n = 0;
    pthread_mutex_lock(&s->runs->lock);
    for (struct child *ch = s->runs->head; ch; ch = ch->next)
        n += ch->run_id[0] != '\0';
    pthread_mutex_unlock(&s->runs->lock);
    return n;
}

/* A run whose process ended without ending the run: failed, with the reason. Only a run
 * still queued or running is touched (a run the process ended, or handed back, is not). */
static void record_death(struct serve *s, const char *run_id, int status)
{
    char why[200];
    const char *only_queued = "false";
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(why, sizeof why, "the run's process was killed by signal %d (%s)", sig,
                 runproc_signal_name(sig));
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_BAD_INPUT) {
        /* It could not start the run (its DAG no longer loads, say): the run stays queued. */
        snprintf(why, sizeof why, "the run could not start (exit code 2; the server log says "
                                  "why)");
        only_queued = "true";
    } else
        return;
    struct dr_err err;
    err_clear(&err);
    struct store *conn = serve_db_get(s, &err);
    if (!conn) {
        log_msg(DR_LOG_ERROR, run_id, NULL, NULL, "%s; not recorded: %s", why, err.msg);
        return;
    }
    const char *v[] = { run_id, why, only_queued };
    PGresult *res = serve_db_exec(
        conn,
        "UPDATE dagrun.dag_run SET state = 'failed', error = $2, ended_at = now(),"
        " started_at = coalesce(started_at, now())"
        " WHERE run_id = $1 AND (state = 'queued' OR (state = 'running' AND NOT $3::boolean))",
        3, v, &err);
    if (!res)
        log_msg(DR_LOG_ERROR, run_id, NULL, NULL, "%s; not recorded: %s", why, err.msg);
    else if (strcmp(PQcmdTuples(res), "1") == 0)
        log_msg(DR_LOG_ERROR, run_id, NULL, NULL, "%s; the run is failed", why);
    PQclear(res);
    serve_db_put(s, conn);
}

/* The scheduler process itself died (its runs run in processes of their own, which the
 * scheduler records when they are killed): what it still held as running is failed with the
 * signal named, rather than resumed into the same crash again and again. Committed items are
 * kept: clearTaskInstances (or dagrun resume) re-runs the rest. */
static void record_scheduler_death(struct serve *s, pid_t pid, int sig)
{
    char why[200], pids[16], host[256] = "";
    snprintf(why, sizeof why, "the scheduler process running it was killed by signal %d (%s)",
             sig, runproc_signal_name(sig));
    snprintf(pids, sizeof pids, "%d", (int)pid);
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    struct dr_err err;
    err_clear(&err);
    struct store *conn = serve_db_get(s, &err);
    const char *v[] = { pids, host, why };
    PGresult *res = conn ? serve_db_exec(conn,
                                         "UPDATE dagrun.dag_run SET state = 'failed', error = $3,"
                                         " ended_at = now() WHERE pid = $1::int AND hostname = $2"
                                         " AND state = 'running' RETURNING run_id",
                                         3, v, &err)
                         : NULL;
    if (!res)
        log_error("%s; its runs are not recorded failed: %s", why, err.msg);
    for (int i = 0; res && i < PQntuples(res); i++)
        log_msg(DR_LOG_ERROR, PQgetvalue(res, i, 0), NULL, NULL, "%s; the run is failed", why);
    PQclear(res);
    serve_db_put(s, conn);
}

void serve_runs_reap(struct serve *s)
{
    struct serve_runs *rs = s->runs;
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        if (pid == rs->scheduler) {
            rs->scheduler = 0;
            rs->scheduler_next_ms = serve_now_ms() + 1000;
            if (!s->stop) {
                log_warn("the scheduler process ended (status %d); restarting it", status);
                if (WIFSIGNALED(status))
                    record_scheduler_death(s, pid, WTERMSIG(status));
            }
            continue;
        }
        struct child *done = NULL;
        pthread_mutex_lock(&rs->lock);
        for (struct child **pp = &rs->head; *pp; pp = &(*pp)->next)
            if ((*pp)->pid == pid) {
                done = *pp;
                *pp = done->next;
                break;
            }
        pthread_mutex_unlock(&rs->lock);
        if (!done)
            continue;
        if (!s->stop)
            record_death(s, done->run_id, status);
        free(done);
    }
    if (s->scheduler && !rs->scheduler && !s->stop && serve_now_ms() >= rs->scheduler_next_ms) {
        struct dr_err err;
        err_clear(&err);
        /* Each scheduled run in a process of its own, as a triggered one: a plugin that
         * crashes fails its run only. */
        const char *args[] = { "scheduler", "--run-processes", NULL };
        pid_t pid = spawn(s, args, &err);
        if (pid < 0) {
            log_error("%s", err.msg);
            rs->scheduler_next_ms = serve_now_ms() + 5000;
        } else
            rs->scheduler = pid;
    }
}

void serve_runs_stop(struct serve *s)
{
    struct serve_runs *rs = s->runs;
    if (!rs)
        return;
    /* SIGTERM: a run process and the scheduler let their runs reach a resumable state and
     * set them queued, for the next server or scheduler. */
    pthread_mutex_lock(&rs->lock);
    for (struct child *ch = rs->head; ch; ch = ch->next)
        kill(ch->pid, SIGTERM);
    pthread_mutex_unlock(&rs->lock);
    if (rs->scheduler)
        kill(rs->scheduler, SIGTERM);
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid < 0)
            break;
        if (pid == rs->scheduler) {
            rs->scheduler = 0;
            continue;
        }
        pthread_mutex_lock(&rs->lock);
        for (struct child **pp = &rs->head; *pp; pp = &(*pp)->next)
            if ((*pp)->pid == pid) {
                struct child *done = *pp;
                *pp = done->next;
                free(done);
                break;
            }
        pthread_mutex_unlock(&rs->lock);
    }
    pthread_mutex_destroy(&rs->lock);
    free(rs);
    s->runs = NULL;
}

/* ---- the run process: `dagrun _run RUN_ID` ---- */

static volatile sig_atomic_t g_stop;   /* as cmd_run.c's */
static struct launch *g_launch;

/* SIGTERM (the server stops): the run is handed back as queued. SIGINT (the run was
 * cancelled through the API): it ends cancelled. A second signal exits at once. */
static void on_run_signal(int sig)
{
    if (__atomic_load_n(&g_stop, __ATOMIC_RELAXED))
        _exit(EXIT_FAILED);
    if (sig == SIGTERM && g_launch)
        g_launch->requeue_on_stop = true;
    __atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
}

int cmd_serve_run(struct cli *c, int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: dagrun _run RUN_ID (started by dagrun serve)\n", stderr);
        return EXIT_BAD_INPUT;
    }
    struct dr_err err;
    err_clear(&err);
    struct store *st = cli_open_store(c, &err);
    if (!st) {
        err_print(&err);
        return EXIT_FAILED;
    }
    int rc = EXIT_BAD_INPUT;
    struct dag *dag = NULL;
    json_t *run = store_run_get(st, argv[1], &err);
    const char *dag_id = json_string_value(json_object_get(run, "dag_id"));
    if (!run || !dag_id || !(dag = cli_find_dag(c, dag_id, true, &err))) {
        err_print(&err);
        goto out;
    }
    struct launch l = {
        .run_type = json_string_value(json_object_get(run, "run_type")),
        .resume_run_id = argv[1],
        .stop = &g_stop,
    };
    json_t *conf = json_object_get(run, "conf");
    l.conf = json_is_object(conf) && json_object_size(conf) ? conf : NULL;
    if (launch_run_dates(run, &l, &err) < 0) {
        err_print(&err);
        goto out;
    }
    if (!l.run_type)
        l.run_type = "manual";
    g_launch = &l;
    cli_on_stop_signals(on_run_signal);
    struct launch_env env = { .cfg = c->cfg, .json = c->json, .tty = c->tty };
    rc = launch_run(&env, dag, st, &l);
    g_launch = NULL;
out:
    json_decref(run);
    dag_free(dag);
    store_close(st);
    return rc;
}
