# Helpers for the `dagrun serve` integration tests (sourced after tests/integration/lib.sh).

# serve_setup CONFIG: test DAGs and plugins of the server's own, a random API token in
# DAGRUN_API_TOKEN (serve.token_env), listening on a free loopback port. Sets CONFIG.
serve_setup() {
    local cfg=$1
    mkdir -p "$T_WORK/dags" "$T_WORK/plugins"
    cp "$DR_TOP"/dags/ci/{ci_smoke,ci_mapped,kite_smoke}.yaml "$T_WORK/dags/"
    ln -sf "$DR_BUILD"/tasks/*.so "$T_WORK/plugins/"
    ln -sf "$DR_BUILD/tests/plugins/crash.so" "$T_WORK/plugins/"
    cat >"$T_WORK/dags/serve_crash.yaml" <<'YAML'
dag_id: serve_crash
description: A task whose plugin dies of SIGSEGV
schedule: null
tasks:
  first: { plugin: noop }
  boom:  { plugin: crash, after: [first] }
YAML
    cat >"$T_WORK/dags/serve_slow.yaml" <<'YAML'
dag_id: serve_slow
description: Slow items, two at a time (for cancelling and stopping runs)
schedule: null
max_active_tasks: 2
params:
  n: 200
tasks:
  items: { plugin: emit_list }
  nap:   { plugin: sleep, map: items, params: { ms: 100 } }
YAML
    SERVE_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    export DAGRUN_API_TOKEN=$SERVE_TOKEN
    jq --arg d "$T_WORK/dags" --arg p "$T_WORK/plugins" \
        '.dags_dir = $d | .plugin_dir = $p
         | .serve = { "listen": "127.0.0.1:0", "token_env": "DAGRUN_API_TOKEN" }' \
        "$cfg" >"$cfg.tmp" && mv "$cfg.tmp" "$cfg"
    CONFIG=$cfg
}

# serve_start CONFIG [ARGS...]: starts `dagrun serve` and waits until it answers; sets
# SERVE_PID, SERVE_URL and SERVE_LOG.
serve_start() {
    local cfg=$1; shift
    SERVE_N=$(( ${SERVE_N:-0} + 1 ))
    SERVE_LOG=$T_WORK/serve.$SERVE_N.log
    "$DR_BUILD/dagrun" -c "$cfg" serve "$@" >"$SERVE_LOG" 2>&1 &
    SERVE_PID=$!
    T_PIDS+=("$SERVE_PID")
    local i port=""
    for i in $(seq 1 200); do
        port=$(sed -n 's/.*serving on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$SERVE_LOG" | head -n 1)
        [ -n "$port" ] && break
        sleep 0.05
    done
    SERVE_URL="http://127.0.0.1:$port"
    for i in $(seq 1 100); do curl -sf "$SERVE_URL/health" >/dev/null && break; sleep 0.05; done
}

# serve_stop: SIGTERM, then waits; SERVE_RC is its exit code.
serve_stop() {
    kill -TERM "$SERVE_PID" 2>/dev/null
    wait "$SERVE_PID"
    SERVE_RC=$?
}

# count_python FILE: adds a Python test's "ok" / "not ok" lines to the totals.
count_python() {
    local p f
    p=$(grep -c '^ok - ' "$1")
    f=$(grep -c '^not ok - ' "$1")
    T_PASS=$((T_PASS + p))
    T_FAIL=$((T_FAIL + f))
    grep -qE '^[0-9]+ passed, [0-9]+ failed' "$1" || not_ok "$(basename "$1"): the Python test did not finish"
}

# api METHOD PATH [JSON]: one API call with the token; prints the body.
api() {
    curl -s -X "$1" -H "Authorization: Bearer $SERVE_TOKEN" -H 'Content-Type: application/json' \
        ${3:+-d "$3"} "$SERVE_URL$2"
}

# Debian's Python, which has the packages the Makefile installs (python3-jsonschema,
# python3-selenium), whatever python3 comes first in PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
