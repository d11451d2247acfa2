#!/usr/bin/env bash
# `make demo`: the market-data job end to end on a sandbox PostgreSQL and the Kite broker
# simulator: load instruments, ingest daily candles with a progress bar, run again
# incrementally, show the summary and a few rows, then stop what it started (DEMO_KEEP=1:
# leave the database and the simulator running for the next commands it prints).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${DR_BUILD:-build}
work=$(mktemp -d /tmp/dagrun-demo.XXXXXX)
chmod 711 "$work"   # the sandbox server runs as postgres and must reach its folder
sim_pid=""
own_db=""
cleanup() {
    [ -n "${DEMO_KEEP:-}" ] && return
    [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
    [ -n "$own_db" ] && tests/pg_sandbox.sh stop "$work/pg" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -z "${DATABASE_URL:-}" ]; then
    step "starting a sandbox PostgreSQL in $work/pg"
    DATABASE_URL=$(tests/pg_sandbox.sh start "$work/pg")
    own_db=1
    export DATABASE_URL
fi

step "starting the Kite Connect simulator (40 instruments, 10 requests/s)"
"$B/kite_sim" --port 0 --port-file "$work/port" --instruments 40 --rate 10 --burst 1 >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.05; done
export SIM_URL="http://127.0.0.1:$(cat "$work/port")"
export KITE_API_KEY=sim_key KITE_ACCESS_TOKEN=sim_token
cat >"$work/config.json" <<JSON
{
  "dags_dir": "$PWD/dags",
  "plugin_dir": "$PWD/$B/tasks",
  "max_active_tasks": 8,
  "pools": { "kite": { "slots": 8 } },
  "sources": {
    "kite": { "base_url": "\${SIM_URL}", "api_key_env": "KITE_API_KEY",
              "access_token_env": "KITE_ACCESS_TOKEN", "rate_limit_per_sec": 10, "burst": 1 }
  }
}
JSON
dagrun() { "$B/dagrun" -c "$work/config.json" "$@"; }

step "dagrun initdb"
dagrun initdb --schema schema.sql
step "dagrun run kite_instruments"
dagrun run kite_instruments
step "dagrun run kite_historic (day candles since 2020-01-01 up to 2026-11-20)"
dagrun run kite_historic --conf '{"limit": 40, "bootstrap_date": "2020-01-01", "end_date": "2026-11-20"}'
step "dagrun run kite_historic again, a week later: only the new days are fetched"
dagrun run kite_historic --conf '{"limit": 40, "bootstrap_date": "2020-01-01", "end_date": "2026-11-27"}'
step "a few stored candles"
PGTZ=Asia/Kolkata psql -X -P pager=off "$DATABASE_URL" -c "select tradingsymbol, exchange, candle_interval, ts, open, high, low, close, volume
                            from kite_ohlcv_historic order by instrument_token, ts desc limit 5"
PGTZ=Asia/Kolkata psql -X -P pager=off "$DATABASE_URL" -c "select count(*) as candles, count(distinct instrument_token) as instruments,
                                   min(ts)::date as first, max(ts)::date as last from kite_ohlcv_historic"
step "dagrun runs"
dagrun runs
run_id=$(dagrun runs --json | jq -r '.[0].run_id')
step "dagrun logs ${run_id##*__}...: the last of the kept task logs"
dagrun logs "$run_id" | tail -5 | cut -c1-160

step "next commands to try"
if [ -n "${DEMO_KEEP:-}" ]; then
    echo "The database and the simulator are still running (stop: kill $sim_pid;"
    echo "tests/pg_sandbox.sh stop $work/pg). With the demo's config and environment:"
    echo "  export DATABASE_URL='$DATABASE_URL' SIM_URL=$SIM_URL KITE_API_KEY=sim_key KITE_ACCESS_TOKEN=sim_token"
    d="$B/dagrun -c $work/config.json"
else
    echo "(DEMO_KEEP=1 make demo keeps the database and simulator for these)"
    d="$B/dagrun -c CONFIG"
fi
echo "  $d logs RUN_ID            # a run's kept task logs"
echo "  $d status RUN_ID          # each task instance"
echo "  $d runs --state failed    # what did not succeed"
echo "  $d list                   # DAGs, schedules, next runs"
echo "  $d --help                 # every command"
echo "  RUN_ID: $run_id"
