/* `dagrun scheduler`: fires DAG runs on their cron schedules and runs them in-process (or,
 * with --run-processes, each in a child process of its own). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "date.h"
#include "due.h"
#include "log.h"
#include "runproc.h"

/* One loaded version of a DAG file. A run holds a reference, so an edit can
 * replace the scheduler's version while older runs finish on theirs. */
struct version {
    struct dag *dag;
    int refs;                   /* protected by sched.lock */
};

struct dag_file {
    char *path;
    struct timespec mtime;
    struct version *v;          /* last good version, or NULL; protected by sched.lock */
    bool seen;                  /* present in the latest scan */
    bool dup;                   /* another file defines the same dag_id: neither is scheduled */
};

/* The DAG file f schedules: its version, or NULL (none loaded, or its dag_id clashes). */
static struct version *scheduled(const struct dag_file *f)
{
    return f->dup ? NULL : f->v;
}

struct sched_run {
    struct sched *s;
    struct version *v;
    struct launch l;            /* l.conf is owned here */
    pthread_t thread;
    bool done;                  /* protected by sched.lock */
    int rc;
    struct sched_run *next;     /* protected by sched.lock */
};

struct sched {
    struct cli *c;              /* the command's invocation: dags_dir, plugins */
    struct launch_env env;      /* what the runs get: config and output flags */
    struct store *st;           /* the scheduler thread's connection */
    struct dag_file *files;
    size_t n_files;
    pthread_mutex_t lock;       /* guards version refs, the runs list and run->done */
    struct sched_run *runs;
    volatile sig_atomic_t stop; /* set by SIGTERM/SIGINT (__atomic accesses: the executor
                                 * reads it from other threads); runs see it too */
    char *self;                 /* --run-processes: this binary's path; NULL: runs are threads */
    json_t *unresumable;        /* stale runs whose DAG is not scheduled, warned once (ids) */
};

static struct sched *g_sched;   /* for the signal handler only */

static void on_signal(int sig)
{
    (void)sig;
    if (g_sched)
        __atomic_store_n(&g_sched->stop, 1, __ATOMIC_RELAXED);
}

static bool stopping(const struct sched *s)
{
    return __atomic_load_n(&s->stop, __ATOMIC_RELAXED) != 0;
}

static void version_put(struct sched *s, struct version *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&s->lock);
    bool last = --v->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (last) {
        dag_free(v->dag);
        free(v);
    }
}

/* Scans dags_dir; (re)loads files that are new or changed. A file that stops
 * validating keeps its last good version and the error is logged. */
static void scan_dags(struct sched *s)
{
    struct dr_err err;
    err_clear(&err);
    char **paths = dag_list_files(s->c->cfg->dags_dir, &err);
    if (!paths) {
        log_error("%s", err.msg);
        return;
    }
    for (size_t i = 0; i < s->n_files; i++)
        s->files[i].seen = false;
    for (char **p = paths; *p; p++) {
        struct stat sb;
        if (stat(*p, &sb) < 0)
            continue;
        struct dag_file *f = NULL;
        for (size_t i = 0; i < s->n_files; i++)
            if (strcmp(s->files[i].path, *p) == 0)
                f = &s->files[i];
        if (!f) {
            struct dag_file *grown = realloc(s->files, (s->n_files + 1) * sizeof *grown);
            if (!grown)
                continue;
            s->files = grown;
            f = &s->files[s->n_files++];
            memset(f, 0, sizeof *f);
            f->path = strdup(*p);
        } else if (f->mtime.tv_sec == sb.st_mtim.tv_sec && f->mtime.tv_nsec == sb.st_mtim.tv_nsec) {
            f->seen = true;
            continue;
        }
        f->seen = true;
        f->mtime = sb.st_mtim;
        struct dag *d = dag_load(*p, cli_plugins(s->c), &err);
        if (!d) {
            log_error("%s%s", err.msg,
                      f->v ? " (keeping the last good version)" : " (not scheduled)");
            continue;
        }
        struct version *v = calloc(1, sizeof *v);
        if (!v) {
            dag_free(d);
            continue;
        }
        v->dag = d;
        v->refs = 1;
        log_info("%s %s from %s", f->v ? "reloaded" : "loaded", d->dag_id, *p);
        struct version *old = f->v;
        f->v = v;
        version_put(s, old);
    }
    dag_free_list(paths);
    for (size_t i = 0; i < s->n_files; i++)
        if (!s->files[i].seen && s->files[i].v) {
            log_info("%s removed: %s is no longer scheduled", s->files[i].path,
                     s->files[i].v->dag->dag_id);
            version_put(s, s->files[i].v);
            s->files[i].v = NULL;
        }
    /* A dag_id defined in two files is refused as validate refuses it: neither file is
     * scheduled (nor its stale runs resumed) until one of them changes its id or goes. */
    for (size_t i = 0; i < s->n_files; i++) {
        struct dag_file *f = &s->files[i];
        const struct dag_file *other = NULL;
        for (size_t k = 0; f->v && k < s->n_files && !other; k++)
            if (k != i && s->files[k].v &&
                strcmp(s->files[k].v->dag->dag_id, f->v->dag->dag_id) == 0)
                other = &s->files[k];
        if (other && !f->dup)
            log_error("%s: dag_id \"%s\" is also defined in %s: neither file is scheduled",
                      f->path, f->v->dag->dag_id, other->path);
        else if (!other && f->dup && f->v)
            log_info("%s: dag_id \"%s\" is its own again: scheduled", f->path,
                     f->v->dag->dag_id);
        f->dup = other != NULL;
    }
}

/* A run whose process was killed (a plugin crashed it): failed with the signal named, unless
 * it already ended. Its committed items are kept: dagrun resume re-runs the rest. */
static void record_killed(struct sched_run *r, int sig)
{
    char why[200];
    snprintf(why, sizeof why, "the run's process was killed by signal %d (%s)", sig,
             runproc_signal_name(sig));
    struct dr_err err;
    err_clear(&err);
    struct store *st = launch_open_store(r->s->env.cfg, &err);
    PGresult *res = NULL;
    if (st) {
        const char *v[] = { r->l.run_id, why };
        res = PQexecParams(store_conn(st),
                           "UPDATE dagrun.dag_run SET state = 'failed', error = $2,"
                           " ended_at = now(), started_at = coalesce(started_at, now())"
                           " WHERE run_id = $1 AND state IN ('queued', 'running')",
                           2, NULL, v, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            err_set(&err, "%s", PQresultErrorMessage(res));
    }
    if (err.msg[0])
        log_msg(DR_LOG_ERROR, r->l.run_id, NULL, NULL, "%s; not recorded: %s", why, err.msg);
    else if (strcmp(PQcmdTuples(res), "1") == 0)
        log_msg(DR_LOG_ERROR, r->l.run_id, NULL, NULL, "%s; the run is failed", why);
    PQclear(res);
    store_close(st);
}

/* --run-processes: runs `dagrun _run RUN_ID` and waits for it; a stopping scheduler passes
 * SIGTERM on (the run is handed back queued). Returns the run's exit code. */
static int run_process(struct sched_run *r)
{
    struct sched *s = r->s;
    const struct runproc_opts o = { .self = s->self, .config_path = s->c->config_path };
    const char *args[] = { "_run", r->l.run_id, NULL };
    struct dr_err err;
    err_clear(&err);
    pid_t pid = runproc_spawn(&o, args, &err);
    if (pid < 0) {
        log_msg(DR_LOG_ERROR, r->l.run_id, NULL, NULL, "%s", err.msg);
        return EXIT_FAILED;
    }
    log_msg(DR_LOG_INFO, r->l.run_id, NULL, NULL, "run process %d started", (int)pid);
    bool passed_on = false;
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            log_msg(DR_LOG_ERROR, r->l.run_id, NULL, NULL, "waiting for run process %d: %s",
                    (int)pid, strerror(errno));
            return EXIT_FAILED;
        }
        if (stopping(s) && !passed_on) {
            kill(pid, SIGTERM);
            passed_on = true;
        }
        nanosleep(&(struct timespec){ 0, 100 * 1000000L }, NULL);
    }
    if (WIFSIGNALED(status)) {
        record_killed(r, WTERMSIG(status));
        return EXIT_FAILED;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_FAILED;
}

static void *run_thread(void *arg)
{
    struct sched_run *r = arg;
    struct dr_err err;
    err_clear(&err);
    struct store *st = NULL;
    if (r->s->self)
        r->rc = run_process(r);
    else if (!(st = launch_open_store(r->s->env.cfg, &err))) {
        log_error("%s: %s", r->l.run_id, err.msg);
        r->rc = EXIT_FAILED;
    } else {
        r->rc = launch_run(&r->s->env, r->v->dag, st, &r->l);
        store_close(st);
    }
    pthread_mutex_lock(&r->s->lock);
    r->done = true;
    pthread_mutex_unlock(&r->s->lock);
    return NULL;
}

/* Starts a run thread. conf: the run's stored conf when resuming (borrowed, copied), else
 * NULL. */
static int start_run(struct sched *s, struct version *v, const char *run_id, bool resume,
                     const json_t *conf, int64_t logical, int64_t start, int64_t end)
{
    struct sched_run *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->s = s;
    r->v = v;
    r->l.run_type = "scheduled";
    r->l.logical_date = logical;
    r->l.data_interval_start = start;
    r->l.data_interval_end = end;
    r->l.stop = &s->stop;
    r->l.requeue_on_stop = true;
    snprintf(r->l.run_id, sizeof r->l.run_id, "%s", run_id);
    if (resume)
        r->l.resume_run_id = r->l.run_id;
    if (json_is_object(conf))
        r->l.conf = json_deep_copy(conf); /* the run thread gets its own copy */
    pthread_mutex_lock(&s->lock);
    v->refs++;
    pthread_mutex_unlock(&s->lock);
    if (pthread_create(&r->thread, NULL, run_thread, r) != 0) {
        version_put(s, v);
        json_decref(r->l.conf);
        free(r);
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    r->next = s->runs;
    s->runs = r;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* Joins finished runs; returns the worst exit code seen (0 when all passed). */
static int reap(struct sched *s, bool wait_all)
{
    int worst = 0;
    for (;;) {
        struct sched_run *done = NULL, **pp;
        pthread_mutex_lock(&s->lock);
        for (pp = &s->runs; *pp; pp = &(*pp)->next)
            if ((*pp)->done) {
                done = *pp;
                *pp = done->next;
                break;
            }
        bool any = s->runs != NULL;
        pthread_mutex_unlock(&s->lock);
        if (done) {
            pthread_join(done->thread, NULL);
            /* A run parked by a used-up window (queued) is no failure: it is resumed here. */
            if (done->rc && done->rc != EXIT_QUEUED && !worst)
                worst = done->rc;
            version_put(s, done->v);
            json_decref(done->l.conf);
            free(done);
            continue;
        }
        if (!wait_all || !any)
            return worst;
        struct timespec ts = { 0, 100 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

/* Fires the due intervals of one DAG (due.c says which), at most max_active_runs at once. */
static int fire_dag(struct sched *s, struct version *v, int64_t now)
{
    const struct dag *d = v->dag;
    struct dr_err err;
    err_clear(&err);
    bool paused = false, found = false;
    int active = 0;
    int64_t last = 0;
    if (store_dag_is_paused(s->st, d->dag_id, &paused, &err) < 0 ||
        store_runs_active(s->st, d->dag_id, &active, &err) < 0 ||
        store_last_scheduled(s->st, d->dag_id, &last, &found, &err) < 0) {
        log_error("%s: %s", d->dag_id, err.msg);
        return 0;
    }
    if (paused)
        return 0;
    const struct due_rule rule = {
        .cron = d->cron, .tz = d->tz, .start_date = d->start_date, .catchup = d->catchup,
    };
    int fired = 0;
    struct due_interval due[16];
    size_t n;
    while (active < d->max_active_runs && !stopping(s)) {
        size_t room = (size_t)(d->max_active_runs - active);
        if (!(n = due_intervals(&rule, found, last, now, due, room < 16 ? room : 16)))
            break;
        for (size_t k = 0; k < n && !stopping(s); k++) {
            int64_t start = due[k].start, end = due[k].end;
            found = true;
            last = start;
            char run_id[160];
            /* The limit is counted again in the database, under a lock on the DAG: another
             * scheduler or a manual run may hold the slots this one counted free. */
            int made = store_run_create_limited(s->st, d->dag_id, "scheduled", start, start,
                                                end, NULL, d->max_active_runs, NULL, run_id,
                                                sizeof run_id, &err);
            if (made < 0) {
                log_error("%s: %s", d->dag_id, err.msg);
                return fired;
            }
            if (made == 2)
                return fired; /* full: the intervals go next round */
            if (made == 1)
                continue; /* another scheduler fired it */
            log_info("fired %s", run_id);
            if (start_run(s, v, run_id, false, NULL, start, start, end) < 0)
                log_error("%s: cannot start a thread", run_id);
            else
                fired++;
            active++;
        }
    }
    return fired;
}

/* Resumes runs whose process died (heartbeat older than heartbeat_timeout_sec), runs
 * that a stopping scheduler handed back (queued), and runs parked by a used-up window of
 * a source once its resume_after has passed (store_runs_stale picks them). */
static int resume_stale(struct sched *s)
{
    struct dr_err err;
    err_clear(&err);
    json_t *ids = store_runs_stale(s->st, s->c->cfg->heartbeat_timeout_sec, &err);
    if (!ids) {
        log_error("%s", err.msg);
        return 0;
    }
    int resumed = 0;
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        json_t *run = store_run_get(s->st, json_string_value(id), &err);
        const char *dag_id = json_string_value(json_object_get(run, "dag_id"));
        struct version *v = NULL;
        for (size_t k = 0; dag_id && k < s->n_files && !v; k++)
            if (scheduled(&s->files[k]) && strcmp(s->files[k].v->dag->dag_id, dag_id) == 0)
                v = s->files[k].v;
        struct launch dates = { 0 };
        if (v && launch_run_dates(run, &dates, &err) == 0) {
            const char *state = json_string_value(json_object_get(run, "state"));
            log_info("resuming %s: %s", json_string_value(id),
                     !state || strcmp(state, "queued") != 0 ? "its heartbeat stopped"
                     : json_is_string(json_object_get(run, "resume_after"))
                         ? "the source's window it waited for reopened"
                         : "a stopped scheduler handed it back");
            if (start_run(s, v, json_string_value(id), true, json_object_get(run, "conf"),
                          dates.logical_date, dates.data_interval_start,
                          dates.data_interval_end) == 0)
                resumed++;
        } else if (v) {
            log_error("%s", err.msg);
        } else if (dag_id && s->unresumable &&
                   !json_object_get(s->unresumable, json_string_value(id))) {
            /* Said once per run: it stays as it is until its DAG is back in dags_dir. */
            json_object_set_new(s->unresumable, json_string_value(id), json_true());
            log_warn("%s stopped (its heartbeat is stale) but is not resumed: no DAG \"%s\" "
                     "is scheduled from %s (no such file, it does not load, or its dag_id is "
                     "in two files)",
                     json_string_value(id), dag_id, s->c->cfg->dags_dir);
        }
        json_decref(run);
    }
    json_decref(ids);
    return resumed;
}

static const char scheduler_usage[] =
    "usage: dagrun scheduler [--once] [--run-processes]\n"
    "Loads every DAG in dags_dir (reloading files that change) and fires runs at their cron\n"
    "times in each DAG's time zone: catchup true runs every missed interval since start_date,\n"
    "catchup false only the latest; max_active_runs is respected; paused DAGs are skipped;\n"
    "runs whose process died are resumed, and runs parked by a used-up window of a source\n"
    "once it reopens (checked every 30 s). Runs execute in this process.\n"
    "  --once   fire what is due now, wait for those runs, fire what max_active_runs held\n"
    "           back, and exit when nothing more is due (for cron and tests)\n"
    "  --run-processes  run each run in a child process of its own (`dagrun _run RUN_ID`,\n"
    "           as dagrun serve does): a plugin that crashes fails its run only\n"
    "SIGTERM or SIGINT: stop firing, let running runs reach a resumable state and queue them\n"
    "for the next scheduler, exit 0.\n";

int cmd_scheduler(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, scheduler_usage))
        return EXIT_OK;
    bool once = false, processes = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0)
            once = true;
        else if (strcmp(argv[i], "--run-processes") == 0)
            processes = true;
        else {
            fputs(scheduler_usage, stderr);
            return EXIT_BAD_INPUT;
        }
    }
    struct dr_err err;
    err_clear(&err);
    struct sched s = { .c = c, .env = { .cfg = c->cfg, .json = c->json, .tty = c->tty } };
    pthread_mutex_init(&s.lock, NULL);
    if (!(s.st = cli_open_store(c, &err))) {
        err_print(&err);
        pthread_mutex_destroy(&s.lock);
        return EXIT_FAILED;
    }
    if (processes) {
        if (!(s.self = runproc_self(&err))) {
            fprintf(stderr, "error: scheduler: %s\n", err.msg);
            store_close(s.st);
            pthread_mutex_destroy(&s.lock);
            return EXIT_FAILED;
        }
    }
    s.unresumable = json_object();
    g_sched = &s;
    cli_on_stop_signals(on_signal);

    int rc = EXIT_OK;
    log_info("scheduler started on %s%s", c->cfg->dags_dir, once ? " (once)" : "");
    int64_t last_scan = 0, last_stale = 0;
    int once_worst = 0;
    const int64_t once_due_by = (int64_t)time(NULL);   /* --once: what is due by now */
    while (!stopping(&s)) {
        int64_t now = (int64_t)time(NULL);
        if (now - last_scan >= 2) {
            scan_dags(&s);
            last_scan = now;
        }
        int started = 0;
        if (now - last_stale >= 30 || once) {
            started += resume_stale(&s);
            last_stale = now;
        }
        for (size_t i = 0; i < s.n_files && !stopping(&s); i++)
            if (scheduled(&s.files[i]) && s.files[i].v->dag->cron)
                started += fire_dag(&s, s.files[i].v, once ? once_due_by : now);
        if (once) {
            /* Wait for this round; intervals that max_active_runs held back go next. What
             * became due after --once started waits for the next scheduler. */
            int w = reap(&s, true);
            if (w && !once_worst)
                once_worst = w;
            if (!started)
                break;
            continue;
        }
        int worst = reap(&s, false);
        if (worst)
            log_warn("a scheduled run ended with exit code %d", worst);
        struct timespec ts = { 0, 500 * 1000000L };
        nanosleep(&ts, NULL);
    }
    if (stopping(&s))
        log_info("stopping: no new runs; running runs are queued for the next scheduler");
    int worst = reap(&s, true);
    if (once)
        rc = once_worst ? once_worst : worst;
    if (once && rc == EXIT_OK && log_errors_outside_runs() > 0)
        rc = EXIT_FAILED;   /* a DAG could not be scheduled (e.g. no tables yet): said above */
    for (size_t i = 0; i < s.n_files; i++) {
        version_put(&s, s.files[i].v);
        free(s.files[i].path);
    }
    free(s.files);
    json_decref(s.unresumable);
    free(s.self);
    store_close(s.st);
    g_sched = NULL;
    pthread_mutex_destroy(&s.lock);
    log_info("scheduler stopped");
    return rc;
}
