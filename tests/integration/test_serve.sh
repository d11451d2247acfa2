#!/usr/bin/env bash
# dagrun serve: the Airflow API end to end against a real server, PostgreSQL and the Kite
# simulator (tests/api/test_api.py), the stored candles, /metrics (promtool and values),
# the health endpoints, SIGTERM, and the refusals at start.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../api/serve_lib.sh"

new_db serve
start_sim --rate 0
write_config "$T_WORK/config.json" 20 3 8
serve_setup "$T_WORK/config.json"
export API_TOKEN=$SERVE_TOKEN

# ---- refusals at start ----
out=$(DAGRUN_API_TOKEN= "$DR_BUILD/dagrun" -c "$CONFIG" serve --listen 127.0.0.1:0 2>&1); rc=$?
check "serve without the token variable set: exit 2" [ "$rc" = 2 ]
check "... naming the variable" grep -q "DAGRUN_API_TOKEN is not set" <<<"$out"
jq 'del(.serve.token_env)' "$CONFIG" >"$T_WORK/notoken.json"
out=$("$DR_BUILD/dagrun" -c "$T_WORK/notoken.json" serve --listen 0.0.0.0:0 2>&1); rc=$?
check "no token and a non-loopback address: refused, exit 2" [ "$rc" = 2 ]
check "... saying why" grep -q "refusing to listen on 0.0.0.0:0 without an API token" <<<"$out"
jq '.serve.bogus = 1' "$CONFIG" >"$T_WORK/badkey.json"
out=$("$DR_BUILD/dagrun" -c "$T_WORK/badkey.json" serve 2>&1); rc=$?
check "an unknown serve key: exit 2, named" [ "$rc" = 2 ]
check "... named" grep -q "serve.bogus: unknown key" <<<"$out"

serve_start "$CONFIG"
check "serve answers /health" [ "$(curl -s -o /dev/null -w '%{http_code}' "$SERVE_URL/health")" = 200 ]

# ---- the API ----
T_WORK=$T_WORK SERVE_URL=$SERVE_URL $PY "$DR_TOP/tests/api/test_api.py" >"$T_WORK/api.out" 2>&1
cat "$T_WORK/api.out"
count_python "$T_WORK/api.out"

# The stored candles equal the simulator's: run 1 to 2024-06-28, run 2 (cleared) to 2025-06-30.
stored_rows >"$T_WORK/stored"
for tok in $(q "select distinct instrument_token from kite_ohlcv_historic order by 1"); do
    sim_dump "$tok" day 2023-01-01 2025-06-30
done | sort >"$T_WORK/expected"
check "40 instruments' candles stored" [ "$(q "select count(distinct instrument_token) from kite_ohlcv_historic")" = 40 ]
check "the stored candles equal the simulator's" cmp -s "$T_WORK/stored" "$T_WORK/expected"

# ---- progress of a run that another process runs, seen through another server ----
A_PID=$SERVE_PID A_URL=$SERVE_URL A_LOG=$SERVE_LOG
serve_start "$CONFIG" --no-scheduler
B_PID=$SERVE_PID B_URL=$SERVE_URL
"$DR_BUILD/dagrun" -c "$CONFIG" run serve_slow --conf '{"n": 40}' >"$T_WORK/cli_run.log" 2>&1 &
cli_pid=$!
for _ in $(seq 1 100); do
    cli_run=$(q "select run_id from dagrun.dag_run where dag_id = 'serve_slow' and state = 'running' and run_type = 'manual' order by queued_at desc limit 1")
    [ -n "$cli_run" ] && break; sleep 0.05
done
curl -sN -m 120 -H "Authorization: Bearer $SERVE_TOKEN" \
    "$B_URL/api/v2/dags/serve_slow/dagRuns/$cli_run/events" >"$T_WORK/cli_run.events"
wait "$cli_pid"
check "a \`dagrun run\` watched through a second server: progress events" \
    [ "$(grep -c '^event: progress' "$T_WORK/cli_run.events")" -ge 3 ]
check "... and the end, success" grep -q '^data: {"dag_run_id":"[^"]*","state":"success","dagrun_state":"success"' "$T_WORK/cli_run.events"
check "... which closes the stream" grep -q '^event: end' "$T_WORK/cli_run.events"
serve_stop
SERVE_PID=$A_PID SERVE_URL=$A_URL SERVE_LOG=$A_LOG

# ---- a warning reaches the event stream as it happens, before the run ends ----
ln -sf "$DR_BUILD/tests/plugins/warn.so" "$T_WORK/plugins/"
cat >"$T_WORK/dags/serve_warn.yaml" <<'YAML'
dag_id: serve_warn
description: Warns in the middle of the run, then works on
schedule: null
tasks:
  before: { plugin: sleep, params: { ms: 1500 } }
  say:    { plugin: warn, after: [before], params: { message: "midway warning" } }
  after:  { plugin: sleep, after: [say], params: { ms: 3000 } }
YAML
sleep 2.1   # the server rescans dags_dir every 2 s
warn_run=$(curl -s -X POST -H "Authorization: Bearer $SERVE_TOKEN" -H 'Content-Type: application/json' \
      -d '{"logical_date": null}' "$SERVE_URL/api/v2/dags/serve_warn/dagRuns" | jq -r .dag_run_id)
# Each line of the stream as it arrives; at the warning, the run's state in the database then.
curl -sN -m 60 -H "Authorization: Bearer $SERVE_TOKEN" \
    "$SERVE_URL/api/v2/dags/serve_warn/dagRuns/$warn_run/events" |
    while IFS= read -r line; do
        printf '%s\n' "$line"
        if [ "$line" = "event: warning" ]; then
            printf 'state at the warning: %s\n' "$(q "select state from dagrun.dag_run where run_id = '$warn_run'")"
        fi
    done >"$T_WORK/warn.events"
check "the warning reaches the stream" grep -q '^data: {"message":"say: midway warning"}' "$T_WORK/warn.events"
check "... while the run is still running (before its end event)" \
    grep -qx 'state at the warning: running' "$T_WORK/warn.events"
check "... sent once" [ "$(grep -c 'midway warning' "$T_WORK/warn.events")" = 1 ]
check "... and the stream ends with success" grep -q '^data: {"dag_run_id":"[^"]*","state":"success"' "$T_WORK/warn.events"

# ---- /health without a database ----
jq '.database_url = "postgresql://127.0.0.1:1/none?connect_timeout=2"' "$CONFIG" >"$T_WORK/nodb.json"
DATABASE_URL= serve_start "$T_WORK/nodb.json" --no-scheduler
NODB_PID=$SERVE_PID
body=$(curl -s -w ' %{http_code}' "$SERVE_URL/health")
check "/health with the database unreachable: 503 with the reason" \
    grep -qE '"status":"unavailable".*"reason":"cannot connect to database at 127.0.0.1.* 503$' <<<"$body"
serve_stop
SERVE_PID=$A_PID SERVE_URL=$A_URL SERVE_LOG=$A_LOG

# ---- health ----
jqe() { jq -e "$1" >/dev/null; }
body=$(curl -s "$SERVE_URL/health/queue")
check "/health/queue: the counts" jqe '.runs_queued == 0 and .runs_running == 0 and (.items_pending | type) == "number"' <<<"$body"
body=$(curl -s "$SERVE_URL/health/sources")
check "/health/sources: the kite source with its rate limit and its requests" \
    jqe '.sources[0].source == "kite" and .sources[0].rate_limit_per_sec == 20 and .sources[0].requests_last_hour > 0' <<<"$body"

# ---- metrics ----
curl -s "$SERVE_URL/metrics" >"$T_WORK/metrics"
check "promtool check metrics passes" promtool check metrics <"$T_WORK/metrics"
succ=$(q "select count(*) from dagrun.dag_run where dag_id = 'kite_smoke' and state = 'success'")
check "dagrun_runs_total matches the runs made ($succ)" \
    grep -qx "dagrun_runs_total{dag_id=\"kite_smoke\",state=\"success\"} $succ" "$T_WORK/metrics"
if [ -z "${DR_SANITIZER:-}" ]; then
    crashed=$(grep -c '^dagrun_runs_total{dag_id="serve_crash",state="failed"} 1$' "$T_WORK/metrics")
    check "the crashed run is counted failed" [ "$crashed" = 1 ]
fi
stored=$(q "select sum((counters->>'inserted')::bigint + (counters->>'updated')::bigint) from dagrun.dag_run")
check "dagrun_candles_stored_total equals the runs' counters ($stored)" \
    grep -qx "dagrun_candles_stored_total $stored" "$T_WORK/metrics"
# Requests by source and HTTP status equal what the simulator answered (every Kite request of
# this test went through runs that ended); the rate-limit wait is there per source.
sim_stats | jq -r '.by_status | to_entries[] | "\(.key) \(.value)"' | sort >"$T_WORK/sim_status"
sed -n 's/^dagrun_broker_requests_total{source="kite",status="\([^"]*\)"} \([0-9]*\)$/\1 \2/p' \
    "$T_WORK/metrics" | sort >"$T_WORK/metric_status"
check "dagrun_broker_requests_total{source=\"kite\",status} equals the simulator's answers by status ($(tr '\n' ' ' <"$T_WORK/sim_status"))" \
    cmp -s "$T_WORK/sim_status" "$T_WORK/metric_status"
check "dagrun_rate_limit_wait_seconds_total has the kite source" \
    grep -qE '^dagrun_rate_limit_wait_seconds_total\{source="kite"\} [0-9.]+$' "$T_WORK/metrics"
body=$(curl -s "$SERVE_URL/health/sources")
n200=$(awk '$1 == 200 {print $2}' "$T_WORK/sim_status")
check "/health/sources attributes the requests to kite, with their 2xx share" \
    jqe ".sources[0].source == \"kite\" and .sources[0].requests_last_hour >= $n200 and .sources[0].share_2xx > 0" <<<"$body"
check "the API latency histogram counts requests" \
    grep -qE '^dagrun_http_request_duration_seconds_count [1-9]' "$T_WORK/metrics"
check "the token never reaches the log" bash -c "! grep -qF '$SERVE_TOKEN' '$SERVE_LOG'"

# ---- restart: counters do not go down ----
before=$(grep '^dagrun_runs_total' "$T_WORK/metrics" | sort)
serve_stop
check "SIGTERM: serve exits 0" [ "$SERVE_RC" = 0 ]
serve_start "$CONFIG"
after=$(curl -s "$SERVE_URL/metrics" | grep '^dagrun_runs_total' | sort)
expect_eq "the run counters are the same after a restart" "$after" "$before"

# ---- SIGTERM hands a running run back as queued; the next server resumes it ----
run=$(curl -s -X POST -H "Authorization: Bearer $SERVE_TOKEN" -H 'Content-Type: application/json' \
      -d '{"logical_date": null, "conf": {"n": 60}}' "$SERVE_URL/api/v2/dags/serve_slow/dagRuns" | jq -r .dag_run_id)
for _ in $(seq 1 100); do [ "$(q "select count(*) from dagrun.task_instance where run_id = '$run' and state = 'success' and map_index >= 0")" -ge 3 ] && break; sleep 0.1; done
run_pid=$(q "select pid from dagrun.dag_run where run_id = '$run'")
check "the run process is a child of the server" [ "$(ps -o ppid= -p "$run_pid" | tr -d ' ')" = "$SERVE_PID" ]
check "the run process's environment has no API token" \
    bash -c "tr '\\0' '\\n' </proc/$run_pid/environ | grep -q '^KITE_API_KEY=' && ! tr '\\0' '\\n' </proc/$run_pid/environ | grep -q '^DAGRUN_API_TOKEN='"
serve_stop
expect_eq "SIGTERM: the running run is queued again" "$(q "select state from dagrun.dag_run where run_id = '$run'")" queued
done_before=$(q "select count(*) from dagrun.task_instance where run_id = '$run' and state = 'success' and map_index >= 0")
check "... with the items it finished kept ($done_before)" [ "$done_before" -ge 3 ]
serve_start "$CONFIG"
for _ in $(seq 1 300); do [ "$(q "select state from dagrun.dag_run where run_id = '$run'")" = success ] && break; sleep 0.2; done
expect_eq "the next server's scheduler resumes it to success" "$(q "select state from dagrun.dag_run where run_id = '$run'")" success
serve_stop

# ---- a scheduled run whose plugin segfaults: its run process dies, that run alone fails ----
if [ -z "${DR_SANITIZER:-}" ]; then
    mkdir -p "$T_WORK/cron_dags"
    cat >"$T_WORK/cron_dags/serve_cron_crash.yaml" <<'YAML'
dag_id: serve_cron_crash
description: Scheduled every minute; its plugin dies of SIGSEGV
schedule: "* * * * *"
start_date: 2024-01-01
tasks:
  boom: { plugin: crash }
YAML
    cat >"$T_WORK/cron_dags/serve_cron_ok.yaml" <<'YAML'
dag_id: serve_cron_ok
description: Scheduled every minute, in the same period as serve_cron_crash; it succeeds
schedule: "* * * * *"
start_date: 2024-01-01
tasks:
  first: { plugin: noop }
  nap:   { plugin: sleep, after: [first], params: { ms: 1500 } }
YAML
    jq --arg d "$T_WORK/cron_dags" '.dags_dir = $d' "$CONFIG" >"$T_WORK/cron.json"
    serve_start "$T_WORK/cron.json"
    for _ in $(seq 1 150); do
        [ -n "$(q "select 1 from dagrun.dag_run where dag_id = 'serve_cron_crash' and state = 'failed'")" ] &&
            [ -n "$(q "select 1 from dagrun.dag_run where dag_id = 'serve_cron_ok' and state = 'success'")" ] && break
        sleep 0.2
    done
    err=$(q "select error from dagrun.dag_run where dag_id = 'serve_cron_crash' and run_type = 'scheduled' order by queued_at limit 1")
    check "a scheduled run whose plugin crashes its run process is failed with the signal named" \
        grep -q "the run's process was killed by signal 11 (SIGSEGV)" <<<"$err"
    crash_period=$(q "select data_interval_end from dagrun.dag_run where dag_id = 'serve_cron_crash' and run_type = 'scheduled' order by queued_at limit 1")
    expect_eq "... another DAG's scheduled run of the same period succeeds" \
        "$(q "select state from dagrun.dag_run where dag_id = 'serve_cron_ok' and run_type = 'scheduled' and data_interval_end = '$crash_period'")" success
    check "... the scheduler process did not die" bash -c "! grep -q 'the scheduler process ended' '$SERVE_LOG'"
    check "... and the server answers" [ "$(curl -s -o /dev/null -w '%{http_code}' "$SERVE_URL/health")" = 200 ]
    serve_stop
fi
finish
