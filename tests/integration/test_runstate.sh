#!/usr/bin/env bash
# Run state: kill -9 and resume, cancel, schedulers racing, catchup, DAG reload, runs/status.
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
END=2024-06-28
BOOT=2016-01-01
TRIALS=${DR_KILL_TRIALS:-3}

latest_run() { q "select run_id from dagrun.dag_run where dag_id='$1' order by queued_at desc limit 1"; }
CONF="{\"limit\": 20, \"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}"

# ---- kill -9 at random moments, then resume: identical table, nothing refetched after commit
start_sim --instruments 20 --rate 40 --burst 1
write_config "$CONFIG" 40 5 4
for trial in $(seq 1 "$TRIALS"); do
    new_db kill
    dagrun run kite_instruments >/dev/null 2>&1
    sim_reset
    "$DR_BUILD/dagrun" -c "$CONFIG" run kite_historic --conf "$CONF" >"$T_WORK/run.out" 2>&1 &
    pid=$!
    sleep "$(awk -v s=$RANDOM 'BEGIN { srand(s); printf "%.2f", 0.3 + rand() * 1.4 }')"
    kill -9 $pid; wait $pid 2>/dev/null
    run=$(latest_run kite_historic)
    committed=$(q "select map_key from dagrun.task_instance where run_id='$run' and task_id='upsert' and state='success' order by 1")
    sim_reset
    dagrun resume "$run" >"$T_WORK/resume.out" 2>&1; rc=$?
    expect_eq "trial $trial: resume exits 0" "$rc" 0
    expected_rows "$BOOT" "$END" >"$T_WORK/expected"; stored_rows >"$T_WORK/stored"
    expect_eq "trial $trial: table identical to an uninterrupted run" \
        "$(md5sum <"$T_WORK/stored" | cut -c1-32)" "$(md5sum <"$T_WORK/expected" | cut -c1-32)"
    refetched=0
    for key in $committed; do
        tok=$(q "select instrument_token from instruments where exchange||':'||tradingsymbol = '$key'")
        n=$(sim_stat ".requests_by_token[\"$tok\"] // 0")
        [ "$n" = 0 ] || refetched=$((refetched + 1))
    done
    expect_eq "trial $trial: no committed instrument fetched again ($(wc -w <<<"$committed") committed before the kill)" "$refetched" 0
    expect_eq "trial $trial: one run, all items success" \
        "$(q "select count(*) || ':' || (select count(*) from dagrun.task_instance where run_id='$run' and state <> 'success') from dagrun.dag_run where dag_id='kite_historic'")" "1:0"
    expect_eq "trial $trial: run state success" "$(q "select state from dagrun.dag_run where run_id='$run'")" success
    [ "$T_FAIL" = 0 ] || { echo "# resume output:"; tail -n 20 "$T_WORK/resume.out"; q "select task_id, map_index, state, error from dagrun.task_instance where run_id='$run' and state <> 'success'"; }
done

# ---- the scheduler resumes a run whose process died, once its heartbeat is older than
# heartbeat_timeout_sec (5 s here); the DAG has no schedule, so nothing else fires
mkdir -p "$T_WORK/stale_dags"
sed 's/^schedule: .*/schedule: null/' "$DR_TOP/dags/kite_historic.yaml" >"$T_WORK/stale_dags/kite_historic.yaml"
jq --arg d "$T_WORK/stale_dags" '.dags_dir = $d' "$CONFIG" >"$T_WORK/stale.json"
new_db stale
dagrun run kite_instruments >/dev/null 2>&1
"$DR_BUILD/dagrun" -c "$CONFIG" run kite_historic --conf "$CONF" >"$T_WORK/run.out" 2>&1 &
pid=$!
sleep 1
kill -9 $pid; wait $pid 2>/dev/null
run=$(latest_run kite_historic)
expect_eq "the killed run is left running" "$(q "select state from dagrun.dag_run where run_id='$run'")" running
"$DR_BUILD/dagrun" -c "$T_WORK/stale.json" scheduler --once >"$T_WORK/sched.out" 2>&1; rc=$?
check "a scheduler before the heartbeat timeout leaves it alone" \
    test "$rc:$(q "select state from dagrun.dag_run where run_id='$run'")" = 0:running
sleep 5
"$DR_BUILD/dagrun" -c "$T_WORK/stale.json" scheduler --once >"$T_WORK/sched.out" 2>&1; rc=$?
expect_eq "the scheduler resumes the dead run and exits 0" "$rc" 0
check "it logs why" grep -q "resuming $run: its heartbeat stopped" "$T_WORK/sched.out"
expect_eq "one run, now success" "$(q "select count(*) || ':' || max(state) from dagrun.dag_run where dag_id='kite_historic'")" 1:success
expected_rows "$BOOT" "$END" >"$T_WORK/expected"; stored_rows >"$T_WORK/stored"
expect_eq "the resumed run completes the table" \
    "$(md5sum <"$T_WORK/stored" | cut -c1-32)" "$(md5sum <"$T_WORK/expected" | cut -c1-32)"

# ---- cancel: the run ends cancelled within 5 s; resume completes it (at 10 requests/s the
# run takes about 4 s, so the cancel lands in the middle of it)
curl -sf "$SIM_URL/__sim/config?rate=10" >/dev/null
write_config "$CONFIG" 10 5 4
new_db cancel
dagrun run kite_instruments >/dev/null 2>&1
"$DR_BUILD/dagrun" -c "$CONFIG" run kite_historic --conf "$CONF" >"$T_WORK/run.out" 2>&1 &
pid=$!
sleep 1
run=$(latest_run kite_historic)
t0=$(date +%s.%N)
dagrun cancel "$run" >/dev/null 2>&1
wait $pid; rc=$?
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
expect_eq "cancelled run exits 1" "$rc" 1
expect_le "cancel takes effect within 5 s" "$secs" 5
expect_eq "run state cancelled" "$(q "select state from dagrun.dag_run where run_id='$run'")" cancelled
dagrun resume "$run" >"$T_WORK/resume.out" 2>&1; rc=$?
expect_eq "resume after cancel exits 0" "$rc" 0
expected_rows "$BOOT" "$END" >"$T_WORK/expected"; stored_rows >"$T_WORK/stored"
expect_eq "resume after cancel completes the table" \
    "$(md5sum <"$T_WORK/stored" | cut -c1-32)" "$(md5sum <"$T_WORK/expected" | cut -c1-32)"

# ---- a chunk that fails for good keeps the prefix before it; resume fetches only the rest
# (day candles 2016-01-01..2024-06-28 are two chunks per instrument: the second one fails)
curl -sf "$SIM_URL/__sim/config?rate=0&reject_from=2022-01-01" >/dev/null
write_config "$CONFIG" 0 5 4
new_db prefix
dagrun run kite_instruments >/dev/null 2>&1
sim_reset
PCONF="{\"limit\": 5, \"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}"
dagrun run kite_historic --conf "$PCONF" >"$T_WORK/run.out" 2>&1; rc=$?
run=$(latest_run kite_historic)
expect_eq "every item failing at its second chunk fails the run" "$rc:$(q "select state from dagrun.dag_run where run_id='$run'")" 1:failed
first_to=$(q "select min(checkpoint) || ' ' || max(checkpoint) || ' ' || count(*) from dagrun.task_instance where run_id='$run' and task_id='fetch' and state='failed'")
expect_eq "each failed item records how far it committed" "$first_to" "2021-06-22 2021-06-22 5"
expect_eq "status --json shows the checkpoints" \
    "$(dagrun status "$run" --json | jq -r '[.tasks[] | select(.task_id == "fetch") | .checkpoint] | unique | join(" ")')" 2021-06-22
expect_eq "the first chunk of each instrument is stored" \
    "$(q "select count(distinct instrument_token) || ' ' || (max(ts) at time zone 'Asia/Kolkata')::date from kite_ohlcv_historic")" "5 2021-06-22"
curl -sf "$SIM_URL/__sim/config?reject_from=" >/dev/null
sim_reset
dagrun resume "$run" >"$T_WORK/resume.out" 2>&1; rc=$?
expect_eq "resume exits 0" "$rc" 0
expect_eq "resume requests only the chunk that failed, once per instrument" \
    "$(sim_stat '.historical_requests')" 5
expected_rows "$BOOT" "$END" | grep -E "^($(q "select string_agg(instrument_token::text, '|') from kite_ohlcv_historic"))," >"$T_WORK/expected"
stored_rows >"$T_WORK/stored"
expect_eq "resume completes the table" \
    "$(md5sum <"$T_WORK/stored" | cut -c1-32)" "$(md5sum <"$T_WORK/expected" | cut -c1-32)"

# ---- counters count what committed: with server errors (no HTTP retries, so items retry and
# roll back their first chunk), a cancel in the middle and a resume, dag_run.counters'
# inserted equals the rows in the table (it once counted rolled-back rows too)
curl -sf "$SIM_URL/__sim/config?rate=10&fault_5xx=0.3" >/dev/null
write_config "$CONFIG" 10 0 4
new_db counters
dagrun run kite_instruments >/dev/null 2>&1
"$DR_BUILD/dagrun" -c "$CONFIG" run kite_historic --conf "$CONF" >"$T_WORK/run.out" 2>&1 &
pid=$!
sleep 1.5
run=$(latest_run kite_historic)
dagrun cancel "$run" >/dev/null 2>&1
wait $pid
check "some items were retried" grep -q "retry in" "$T_WORK/run.out"
expect_eq "the run was cancelled" "$(q "select state from dagrun.dag_run where run_id='$run'")" cancelled
expect_eq "counters after the cancel: inserted = rows stored" \
    "$(q "select coalesce((counters->>'inserted')::bigint, 0) from dagrun.dag_run where run_id='$run'")" \
    "$(q "select count(*) from kite_ohlcv_historic")"
curl -sf "$SIM_URL/__sim/config?fault_5xx=0" >/dev/null
dagrun resume "$run" >"$T_WORK/resume.out" 2>&1; rc=$?
expect_eq "resume exits 0" "$rc" 0
expect_eq "counters after the resume: inserted = rows stored" \
    "$(q "select (counters->>'inserted')::bigint from dagrun.dag_run where run_id='$run'")" \
    "$(q "select count(*) from kite_ohlcv_historic")"

# ---- runs and status: tables for people, JSON with --json
out=$(dagrun runs kite_historic)
check "runs prints a table" grep -q 'RUN ID' <<<"$out"
check "runs --json is a JSON array" jq -e 'type == "array" and length >= 1' >/dev/null <<<"$(dagrun runs --json)"
out=$(dagrun status "$run")
check "status prints the tasks" grep -q 'upsert' <<<"$out"
check "status --json has the run and its tasks" jq -e '.run.run_id and (.tasks | length > 0)' >/dev/null <<<"$(dagrun status "$run" --json)"
stop_sim

# ---- schedulers: two at once create each due run once; catchup true/false
mkdir -p "$T_WORK/dags"
start=$(date -u -d '5 days ago' +%Y-%m-%d)
cat >"$T_WORK/dags/daily.yaml" <<YAML
dag_id: daily_catchup
schedule: "@daily"
start_date: $start
catchup: true
max_active_runs: 10
tasks:
  a: { plugin: noop }
YAML
cat >"$T_WORK/dags/latest.yaml" <<YAML
dag_id: daily_latest
schedule: "@daily"
start_date: $start
catchup: false
tasks:
  a: { plugin: noop }
YAML
jq --arg d "$T_WORK/dags" '.dags_dir = $d' "$CONFIG" >"$T_WORK/sched.json"
new_db sched
"$DR_BUILD/dagrun" -c "$T_WORK/sched.json" scheduler --once >"$T_WORK/s1.out" 2>&1 &
p1=$!
"$DR_BUILD/dagrun" -c "$T_WORK/sched.json" scheduler --once >"$T_WORK/s2.out" 2>&1 &
p2=$!
wait $p1; r1=$?; wait $p2; r2=$?
expect_eq "both schedulers exit 0" "$r1:$r2" "0:0"
expect_eq "catchup true: 5 runs for 5 missed days" "$(q "select count(*) from dagrun.dag_run where dag_id='daily_catchup'")" 5
expect_eq "catchup true: the runs cover the 5 days in order" \
    "$(q "select string_agg(to_char(logical_date at time zone 'UTC','YYYY-MM-DD'), ' ' order by logical_date) from dagrun.dag_run where dag_id='daily_catchup'")" \
    "$(for i in 5 4 3 2 1; do date -u -d "$i days ago" +%Y-%m-%d; done | paste -sd' ')"
expect_eq "catchup false: 1 run" "$(q "select count(*) from dagrun.dag_run where dag_id='daily_latest'")" 1
expect_eq "all scheduled runs succeeded" "$(q "select count(*) from dagrun.dag_run where state <> 'success'")" 0
"$DR_BUILD/dagrun" -c "$T_WORK/sched.json" scheduler --once >/dev/null 2>&1
expect_eq "a second --once fires nothing new" "$(q "select count(*) from dagrun.dag_run")" 6
"$DR_BUILD/dagrun" -c "$T_WORK/sched.json" pause daily_catchup >/dev/null
q "delete from dagrun.dag_run" >/dev/null
"$DR_BUILD/dagrun" -c "$T_WORK/sched.json" scheduler --once >/dev/null 2>&1
expect_eq "a paused DAG gets no scheduled run" "$(q "select count(*) from dagrun.dag_run where dag_id='daily_catchup'")" 0

# ---- max_active_runs 1: --once runs the 3 missed days one after another; each run's tasks
# see its logical date and data interval. A manual run with --logical-date gets that
# interval, and its --conf is recorded and shown by status.
mkdir -p "$T_WORK/echo_dags"
cat >"$T_WORK/echo_dags/echo.yaml" <<YAML
dag_id: echo
schedule: "@daily"
start_date: $(date -u -d '3 days ago' +%Y-%m-%d)
catchup: true
max_active_runs: 1
tasks:
  e: { plugin: echo_params }
YAML
jq --arg d "$T_WORK/echo_dags" --arg p "$DR_BUILD/tests/plugins" '.dags_dir = $d | .plugin_dir = $p' \
    "$CONFIG" >"$T_WORK/echo.json"
new_db echo
"$DR_BUILD/dagrun" -c "$T_WORK/echo.json" scheduler --once >"$T_WORK/s1.out" 2>&1; rc=$?
expect_eq "--once with max_active_runs 1 exits 0" "$rc" 0
expect_eq "it runs all 3 missed days" \
    "$(q "select string_agg(to_char(logical_date at time zone 'UTC','YYYY-MM-DD'), ' ' order by logical_date) from dagrun.dag_run where state = 'success'")" \
    "$(for i in 3 2 1; do date -u -d "$i days ago" +%Y-%m-%d; done | paste -sd' ')"
expect_eq "one at a time" "$(q "select count(*) from dagrun.dag_run a join dagrun.dag_run b on a.run_id < b.run_id and a.started_at < b.ended_at and b.started_at < a.ended_at")" 0
expect_eq "each run's task sees its logical date and data interval" \
    "$(q "select count(*) from dagrun.dag_run r join dagrun.task_instance t using (run_id) where t.output->>'logical_date' = to_char(r.logical_date at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') and t.output->>'data_interval_start' = t.output->>'logical_date' and (t.output->>'data_interval_end')::timestamptz = r.logical_date + interval '1 day' and t.output->>'run_id' = r.run_id")" 3
out=$("$DR_BUILD/dagrun" -c "$T_WORK/echo.json" run echo --logical-date 2026-01-05T00:00:00Z --conf '{"note": "hi"}' 2>&1); rc=$?
expect_eq "run --logical-date --conf exits 0" "$rc" 0
expect_eq "--logical-date sets the run's interval and --conf its params" \
    "$(q "select t.output->>'data_interval_start' || ' ' || (t.output->>'data_interval_end') || ' ' || (t.output->>'note') || ' ' || r.conf::text from dagrun.dag_run r join dagrun.task_instance t using (run_id) where r.run_type = 'manual'")" \
    '2026-01-05T00:00:00Z 2026-01-06T00:00:00Z hi {"note": "hi"}'
run=$(latest_run echo)
check "status shows the conf" grep -q '^conf: *{"note": *"hi"}' <<<"$("$DR_BUILD/dagrun" -c "$T_WORK/echo.json" status "$run")"

# ---- SIGTERM to a scheduler in the middle of a run: exit 0, the run is handed back (queued)
# with the items it finished kept; the next scheduler resumes it and runs only the rest
mkdir -p "$T_WORK/slow_dags"
cat >"$T_WORK/slow_dags/slow.yaml" <<YAML
dag_id: slow
schedule: "@daily"
start_date: $(date -u -d '1 day ago' +%Y-%m-%d)
catchup: true
max_active_tasks: 2
tasks:
  items: { plugin: emit_list, params: { n: 6 } }
  s: { plugin: sleep, map: items, params: { ms: 1500 } }
YAML
jq --arg d "$T_WORK/slow_dags" '.dags_dir = $d' "$CONFIG" >"$T_WORK/slow.json"
new_db slow
"$DR_BUILD/dagrun" -c "$T_WORK/slow.json" scheduler >"$T_WORK/slow1.out" 2>&1 &
sp=$!
T_PIDS+=("$sp")
sleep 3
kill -TERM $sp; wait $sp; rc=$?
expect_eq "SIGTERM mid-run: the scheduler exits 0" "$rc" 0
expect_eq "the run is queued for the next scheduler, with some items done" \
    "$(q "select r.state || ':' || (count(*) filter (where t.task_id = 's' and t.state = 'success') between 1 and 5) from dagrun.dag_run r join dagrun.task_instance t using (run_id) group by r.state")" queued:true
done_before=$(q "select string_agg(map_index::text, ',' order by map_index) from dagrun.task_instance where task_id = 's' and state = 'success'")
sleep 5
"$DR_BUILD/dagrun" -c "$T_WORK/slow.json" scheduler --once >"$T_WORK/slow2.out" 2>&1; rc=$?
expect_eq "the next scheduler resumes it and exits 0" "$rc:$(q "select string_agg(state, ',') from dagrun.dag_run")" 0:success
check "it says why" grep -q 'a stopped scheduler handed it back' "$T_WORK/slow2.out"
expect_eq "items finished before the stop were not run again" \
    "$(q "select count(*) from dagrun.task_instance where task_id = 's' and map_index in ($done_before) and ended_at > (select max(started_at) from dagrun.dag_run)")" 0

# ---- a DAG edited while the scheduler runs is reloaded; a broken edit keeps the old version
"$DR_BUILD/dagrun" -c "$T_WORK/sched.json" --log-format text scheduler >"$T_WORK/sched.log" 2>&1 &
sp=$!
T_PIDS+=("$sp")
sleep 3
sed -i 's/  a: { plugin: noop }/  a: { plugin: noop }\n  b: { plugin: noop, after: [a] }/' "$T_WORK/dags/latest.yaml"
sleep 4
check "an edited DAG is reloaded" grep -q 'reloaded daily_latest' "$T_WORK/sched.log"
printf 'dag_id: daily_latest\nschedule: "@daily"\ntasks:\n  a: { plugin: noop, bogus: 1 }\n' >"$T_WORK/dags/latest.yaml"
sleep 4
check "a broken edit is logged with file:line:col" grep -q "latest.yaml:4:[0-9]*: .*bogus" "$T_WORK/sched.log"
check "the old version is kept" grep -q 'keeping the last good version' "$T_WORK/sched.log"
kill -TERM $sp; wait $sp; rc=$?
expect_eq "scheduler exits 0 on SIGTERM" "$rc" 0
finish
