/* Test support: one throwaway PostgreSQL per test process (tests/pg_sandbox.sh). */
#include "sandbox.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_dir[128];         /* sandbox folder; empty when none runs */

char *sandbox_start(const char *tag)
{
    static bool registered;
    if (g_dir[0]) {
        fprintf(stderr, "sandbox: one already runs in %s\n", g_dir);
        return NULL;
    }
    char tmpl[128];
    snprintf(tmpl, sizeof tmpl, "/tmp/dagrun-%s-XXXXXX", tag);
    if (!mkdtemp(tmpl)) {
        perror("sandbox: mkdtemp");
        return NULL;
    }
    snprintf(g_dir, sizeof g_dir, "%s", tmpl);
    if (!registered) {
        atexit(sandbox_stop);
        registered = true;
    }
    char cmd[256], line[512], url[512] = "";
    snprintf(cmd, sizeof cmd, "tests/pg_sandbox.sh start %s", g_dir);
    FILE *p = popen(cmd, "r");
    int rc = -1;
    if (p) {
        while (fgets(line, sizeof line, p))
            if (!url[0] && strncmp(line, "postgresql:", 11) == 0)
                snprintf(url, sizeof url, "%s", line);
        rc = pclose(p);
    }
    url[strcspn(url, "\n")] = '\0';
    char *out = rc == 0 && url[0] ? strdup(url) : NULL;
    if (!out) {
        fprintf(stderr, "sandbox: no server (%s)\n", cmd);
        sandbox_stop();
    }
    return out;
}

const char *sandbox_dir(void)
{
    return g_dir;
}

void sandbox_stop(void)
{
    if (!g_dir[0])
        return;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "tests/pg_sandbox.sh stop %s >/dev/null 2>&1", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "sandbox: could not stop the sandbox in %s\n", g_dir);
    g_dir[0] = '\0';
}
