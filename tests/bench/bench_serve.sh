# dagrun serve benchmarks (sourced by tests/bench/bench.sh; `make bench BENCH_ONLY=serve`):
# trigger latency (p50, p99 over 200 triggers), GET dagRuns/{id} requests per second with wrk,
# 500 concurrent event-stream watchers of one run with the server's peak RSS, a well-behaved
# client among 1,000 idle connections, and paging the task instances of a 100,000-item run.
source tests/api/serve_lib.sh

bench_serve() {
    new_db serve_bench
    start_sim --rate 0
    write_config "$CONFIG" 0 5 8
    serve_setup "$CONFIG"
    serve_start "$CONFIG" --no-scheduler
    local res
    res=$(API_TOKEN=$SERVE_TOKEN SERVE_URL=$SERVE_URL $PY tests/bench/bench_serve.py) ||
        { echo "bench: bench_serve.py failed" >&2; exit 2; }
    say "serve: $res"
    row serve_trigger "serve: 200 triggers of a DAG run, one client" "trigger latency p50" \
        "$(jq .trigger_p50_ms <<<"$res")" "<=" 100 ms
    row serve_trigger99 "serve: 200 triggers of a DAG run, one client" "trigger latency p99" \
        "$(jq .trigger_p99_ms <<<"$res")" "<=" 1000 ms
    local run; run=$(jq -r .last_run <<<"$res")
    local url="$SERVE_URL/api/v2/dags/ci_smoke/dagRuns/$run"
    wrk -t2 -c32 -d10s -H "Authorization: Bearer $SERVE_TOKEN" "$url" >"$T_WORK/wrk.out" 2>&1
    local rps; rps=$(awk '/^Requests\/sec:/ { print $2 }' "$T_WORK/wrk.out")
    say "serve: wrk: $(tr '\n' ' ' <"$T_WORK/wrk.out")"
    row serve_wrk "serve: GET dagRuns/{id}, wrk 2 threads 32 connections 10 s" "requests per second" \
        "${rps:-0}" ">=" 5000 "/s" "$(grep -m1 Latency "$T_WORK/wrk.out" | tr -s ' ')"
    row serve_sse "serve: 500 event-stream watchers of one 100-item run" "watchers that got the end event" \
        "$(jq .watchers_ended <<<"$res")" "==" 500 ""
    row serve_hostile "serve: GET dags while 1,000 idle connections and a slow client are held" \
        "slowest of 20 requests" "$(jq .hostile_max_ms <<<"$res")" "<=" 100 ms \
        "median $(jq .hostile_median_ms <<<"$res") ms"
    local rss; rss=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVE_PID/status")
    row serve_rss "serve: the whole serve bench (500 watchers, 1,000 idle connections)" "server peak RSS" "$rss" "<=" 64 MB
    # A run of 100,000 items (200,000 task instances): its last page and its first.
    cp tests/bench/dags/bench_lane.yaml "$T_WORK/dags/"
    "$DR_BUILD/dagrun" -c "$CONFIG" run bench_lane >"$LOG" 2>&1 || fail_run bench_lane $?
    local big; big=$(q "select run_id from dagrun.dag_run where dag_id = 'bench_lane' order by queued_at desc limit 1")
    local page=() first=() cold=() i
    for i in 1 2 3; do
        cold+=("$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $SERVE_TOKEN" \
            "$SERVE_URL/api/v2/dags/bench_lane/dagRuns/$big/taskInstances?limit=100&offset=199900")")
    done
    # What autovacuum leaves after such a run (its visibility map lets the index answer alone).
    q "VACUUM dagrun.task_instance" >/dev/null
    for i in 1 2 3 4 5; do
        page+=("$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $SERVE_TOKEN" \
            "$SERVE_URL/api/v2/dags/bench_lane/dagRuns/$big/taskInstances?limit=100&offset=199900")")
        first+=("$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $SERVE_TOKEN" \
            "$SERVE_URL/api/v2/dags/bench_lane/dagRuns/$big/taskInstances?limit=100&offset=0")")
    done
    row serve_page_last "serve: taskInstances of a 100,000-item run (200,000 instances), 100 a page" \
        "last page, ms (median of 5)" "$(calc "$(median "${page[@]}") * 1000")" "<=" 250 ms \
        "first page: $(calc "$(median "${first[@]}") * 1000") ms; last page before the table was vacuumed: $(calc "$(median "${cold[@]}") * 1000") ms"
    serve_stop
    stop_sim
}
