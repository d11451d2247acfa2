/* Finding DAG files: the *.yaml and *.yml files under a directory, recursively, sorted. */
#include "dag.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct strvec {
    char **v;
    size_t n, cap;
};

static int push(struct strvec *sv, char *s)
{
    if (!s)
        return -1;
    if (sv->n + 1 >= sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 16;
        char **v = realloc(sv->v, cap * sizeof *v);
        if (!v) {
            free(s);
            return -1;
        }
        sv->v = v;
        sv->cap = cap;
    }
    sv->v[sv->n++] = s;
    sv->v[sv->n] = NULL;
    return 0;
}

static bool yaml_name(const char *name)
{
    size_t len = strlen(name);
    return (len > 5 && strcmp(name + len - 5, ".yaml") == 0) || (len > 4 && strcmp(name + len - 4, ".yml") == 0);
}

/* Hidden entries are skipped; depth stops symlink loops. */
static int walk(const char *dir, int depth, struct strvec *sv, struct dr_err *err)
{
    char eb[128];
    if (depth > 16)
        return err_set(err, "%s: directories nested too deep", dir);
    DIR *dp = opendir(dir);
    if (!dp)
        return err_set(err, "%s: %s", dir, strerror_r(errno, eb, sizeof eb) == 0 ? eb : "cannot open");
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(dp))) {
        if (de->d_name[0] == '.')
            continue;
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        char *p = malloc(len);
        if (!p) {
            rc = err_set(err, "out of memory");
            break;
        }
        snprintf(p, len, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(p, &st) < 0) {
            free(p);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = walk(p, depth + 1, sv, err);
            free(p);
        } else if (S_ISREG(st.st_mode) && yaml_name(de->d_name)) {
            if (push(sv, p) < 0)
                rc = err_set(err, "out of memory");
        } else {
            free(p);
        }
    }
    closedir(dp);
    return rc;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char **dag_list_files(const char *dir, struct dr_err *err)
{
    struct strvec sv = { 0 };
    if (walk(dir, 0, &sv, err) < 0) {
        dag_free_list(sv.v);
        return NULL;
    }
    if (!sv.v) {
        sv.v = calloc(1, sizeof *sv.v);
        if (!sv.v)
            err_set(err, "out of memory");
        return sv.v;
    }
    qsort(sv.v, sv.n, sizeof *sv.v, cmp_path);
    return sv.v;
}

void dag_free_list(char **paths)
{
    if (!paths)
        return;
    for (char **p = paths; *p; p++)
        free(*p);
    free(paths);
}
