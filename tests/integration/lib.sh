# Shared helpers for the integration tests (sourced). Each test file gets its own database
# in the sandbox cluster, its own simulator and its own config, and prints
# "N passed, M failed" at the end (`finish`).
set -uo pipefail
DR_TOP=${DR_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
DR_BUILD=${DR_BUILD:-build}
case "$DR_BUILD" in /*) ;; *) DR_BUILD=$DR_TOP/$DR_BUILD ;; esac
export DAGRUN_PLUGIN_DIR=$DR_BUILD/tasks
T_WORK=$(mktemp -d /tmp/dagrun-t.XXXXXX)   # kept after the test when T_KEEP is set
T_PASS=0 T_FAIL=0 T_PIDS=()

cleanup() {
    local p
    for p in "${T_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${T_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    [ -n "${T_KEEP:-}" ] || rm -rf "$T_WORK"
}
trap cleanup EXIT

ok() { T_PASS=$((T_PASS + 1)); echo "ok - $*"; }
not_ok() { T_FAIL=$((T_FAIL + 1)); echo "not ok - $*"; }

# check NAME CMD...: passes when CMD exits 0.
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
# expect_eq NAME ACTUAL EXPECTED
expect_eq() {
    if [ "$2" == "$3" ]; then ok "$1"; else not_ok "$1: got '$2', want '$3'"; fi
}
# expect_ge NAME ACTUAL MIN (numbers, may be decimals)
expect_ge() {
    if awk -v a="$2" -v b="$3" 'BEGIN { exit !(a + 0 >= b + 0) }'; then ok "$1 ($2 >= $3)"
    else not_ok "$1: $2 < $3"; fi
}
expect_le() {
    if awk -v a="$2" -v b="$3" 'BEGIN { exit !(a + 0 <= b + 0) }'; then ok "$1 ($2 <= $3)"
    else not_ok "$1: $2 > $3"; fi
}
finish() {
    echo "$T_PASS passed, $T_FAIL failed"
    [ "$T_FAIL" = 0 ]
    exit $?
}

# new_db NAME: a fresh database in the sandbox cluster; sets DATABASE_URL and applies the schema.
new_db() {
    local name="t_$1_$$"
    PGOPTIONS="-c client_min_messages=warning" psql -qAtX "$DR_ADMIN_URL" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null
    DATABASE_URL=$(echo "$DR_ADMIN_URL" | sed "s#:///dagrun?#:///$name?#")
    export DATABASE_URL
    psql -qAtX "$DATABASE_URL" -v ON_ERROR_STOP=1 -f "$DR_TOP/schema.sql" >/dev/null
}
q() { psql -qAtX "$DATABASE_URL" -c "$1"; }

# start_sim ARGS...: starts the broker simulator on a free loopback port; sets SIM_URL.
start_sim() {
    local pf="$T_WORK/sim.port.$RANDOM"
    SIM_ARGS=("$@")
    # The simulator is the measuring instrument of the rate tests: it stamps each request's
    # arrival in its handler thread, so as root it runs at a higher priority than the load it
    # measures (dagrun and PostgreSQL on the same two cores).
    local prio=()
    [ "$(id -u)" = 0 ] && prio=(nice -n -10)
    "${prio[@]}" "$DR_BUILD/kite_sim" --port 0 --port-file "$pf" "$@" >"$T_WORK/sim.log" 2>&1 &
    SIM_PID=$!
    T_PIDS+=("$SIM_PID")
    local i
    for i in $(seq 1 100); do [ -s "$pf" ] && break; sleep 0.05; done
    SIM_URL="http://127.0.0.1:$(cat "$pf")"
    export SIM_URL
}
# sim_dump TOKEN INTERVAL FROM TO: the candles the running simulator serves, one canonical
# line each (token,interval,ts,open,high,low,close,volume,oi), without the header.
sim_dump() { "$DR_BUILD/kite_sim" "${SIM_ARGS[@]}" --dump-candles "$@" | tail -n +2; }
# stored_rows: the stored candles in the same canonical form, sorted.
stored_rows() {
    q "select instrument_token||','||candle_interval||','||to_char(ts at time zone 'UTC','YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')||','||open||','||high||','||low||','||close||','||volume||','||coalesce(oi::text,'')
       from kite_ohlcv_historic" | sort
}
# expected_rows FROM TO [INTERVAL]: the simulator's candles for every stored instrument, sorted.
expected_rows() {
    local tok
    for tok in $(q "select instrument_token from instruments order by 1"); do
        sim_dump "$tok" "${3:-day}" "$1" "$2"
    done | sort
}
stop_sim() { kill "$SIM_PID" 2>/dev/null; wait "$SIM_PID" 2>/dev/null; }
sim_stats() { curl -sf "$SIM_URL/__sim/stats"; }
# sim_stat EXPR: a jq expression over the stats, e.g. '.historical_requests'.
sim_stat() { sim_stats | jq -r "$1"; }
sim_reset() { curl -sf "$SIM_URL/__sim/reset" >/dev/null; }

# write_config FILE [RATE [MAX_RETRIES [WORKERS]]]: a config.json for the simulator.
write_config() {
    local file=$1 rate=${2:-0} retries=${3:-5} workers=${4:-8}
    cat >"$file" <<JSON
{
  "dags_dir": "$DR_TOP/dags",
  "plugin_dir": "\${DAGRUN_PLUGIN_DIR}",
  "max_active_tasks": $workers,
  "log_format": "json",
  "heartbeat_sec": 1,
  "heartbeat_timeout_sec": 5,
  "pools": { "kite": { "slots": $workers } },
  "sources": {
    "kite": {
      "base_url": "\${SIM_URL}",
      "headers": { "X-Kite-Version": "3",
                   "Authorization": "token \${KITE_API_KEY}:\${KITE_ACCESS_TOKEN}" },
      "rate_limit_per_sec": $rate,
      "burst": 1,
      "timeout_ms": 5000,
      "connect_timeout_ms": 2000,
      "max_retries": $retries,
      "retry_delay_ms": 50,
      "max_retry_delay_ms": 2000
    }
  }
}
JSON
}
export KITE_API_KEY=sim_key KITE_ACCESS_TOKEN=sim_token
dagrun() { "$DR_BUILD/dagrun" -c "$CONFIG" "$@"; }
