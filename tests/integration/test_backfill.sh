#!/usr/bin/env bash
# dagrun backfill: one run per scheduled interval of a range, oldest first, each run's data
# ending at its interval; a second backfill of the range creates nothing.
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json

start_sim --instruments 5 --rate 0
write_config "$CONFIG" 0
new_db backfill
dagrun run kite_instruments >/dev/null 2>&1
CONF='{"limit": 5, "bootstrap_date": "2024-06-01"}'

check "backfill --help" eval 'dagrun backfill --help | grep -q "usage: dagrun backfill"' 
dagrun backfill kite_historic --from 2024-06-03 >/dev/null 2>&1; rc=$?
expect_eq "backfill without --to is a usage error" "$rc" 2
dagrun backfill ci_smoke --from 2024-06-03 --to 2024-06-07 >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a DAG without a schedule: exit 2" "$rc" 2
check "which is said" grep -q "has no schedule" "$T_WORK/out"
dagrun backfill kite_historic --from 2024-06-03 --to 2024-06-07 --conf '{"nope": 1}' >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a bad conf: exit 2" "$rc" 2
expect_eq "and nothing recorded" "$(q "select count(*) from dagrun.dag_run where dag_id='kite_historic'")" 0

# kite_historic fires Mon-Fri 18:30 IST: Mon 2024-06-03 .. Fri 2024-06-07 are 5 intervals, the
# last one ending Mon 2024-06-10 18:30 IST.
dagrun backfill kite_historic --from 2024-06-03 --to 2024-06-07 --conf "$CONF" >"$T_WORK/out" 2>"$T_WORK/err"; rc=$?
expect_eq "backfill over 5 intervals exits 0" "$rc" 0
expect_eq "it creates 5 backfill runs, all success" \
    "$(q "select count(*) || ' ' || string_agg(distinct run_type, ',') || ' ' || string_agg(distinct state, ',') from dagrun.dag_run where dag_id='kite_historic'")" \
    "5 backfill success"
expect_eq "one per interval, logical dates the schedule's ticks" \
    "$(q "select string_agg(to_char(logical_date at time zone 'UTC', 'MM-DD\"T\"HH24:MI') || '/' || to_char(data_interval_end at time zone 'UTC', 'MM-DD'), ' ' order by logical_date) from dagrun.dag_run where dag_id='kite_historic'")" \
    "06-03T13:00/06-04 06-04T13:00/06-05 06-05T13:00/06-06 06-06T13:00/06-07 06-07T13:00/06-10"
expect_eq "oldest first" \
    "$(q "select bool_and(a.started_at <= b.started_at) from dagrun.dag_run a join dagrun.dag_run b on b.dag_id = a.dag_id and b.logical_date > a.logical_date where a.dag_id='kite_historic'")" t
expect_eq "each run's data ends at its interval's end date (date_ranges' to)" \
    "$(q "select string_agg(distinct_to, ' ' order by ld) from (select r.logical_date ld, (select string_agg(distinct e->>'to', ',') from jsonb_array_elements(t.output) e) distinct_to from dagrun.dag_run r join dagrun.task_instance t on t.run_id = r.run_id and t.task_id = 'date_ranges' where r.dag_id='kite_historic') x where distinct_to is not null")" \
    "2024-06-04 2024-06-05 2024-06-06 2024-06-07 2024-06-10"
expect_eq "the stored candles stop at the last interval's end date" \
    "$(q "select to_char(max((ts at time zone 'Asia/Kolkata')::date), 'YYYY-MM-DD') from kite_ohlcv_historic")" 2024-06-10
expected_rows 2024-06-01 2024-06-10 >"$T_WORK/expected"; stored_rows >"$T_WORK/stored"
expect_eq "every candle of the range is stored" \
    "$(md5sum <"$T_WORK/stored" | cut -c1-32)" "$(md5sum <"$T_WORK/expected" | cut -c1-32)"
expect_eq "the summary line counts the runs (JSON with log_format json)" \
    "$(jq -rc 'select(.backfill) | [.intervals, .runs_started, .succeeded, .skipped, (.runs | length)]' "$T_WORK/out")" "[5,5,5,0,5]"
dagrun --log-format text backfill kite_historic --from 2024-06-03 --to 2024-06-07 --conf "$CONF" >"$T_WORK/out.txt" 2>&1
check "and a line for people in text" grep -q "backfill kite_historic: 5 intervals: 0 run (0 succeeded), 5 skipped" "$T_WORK/out.txt"

dagrun backfill kite_historic --from 2024-06-03 --to 2024-06-07 --conf "$CONF" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a second backfill of the range exits 0" "$rc" 0
expect_eq "and creates no run" "$(q "select count(*) from dagrun.dag_run where dag_id='kite_historic'")" 5
expect_eq "it says why" "$(jq -rc 'select(.backfill) | [.runs_started, .skipped]' "$T_WORK/out")" "[0,5]"
check "and logs each skipped interval" grep -q "2024-06-03T13:00:00Z skipped: a run of it succeeded" "$T_WORK/out"

# A successful run of another type counts; --rerun runs the interval again.
q "delete from dagrun.dag_run where dag_id='kite_historic' and logical_date = '2024-06-05T13:00:00Z'"
dagrun run kite_historic --logical-date 2024-06-05T13:00:00Z --conf "$CONF" >/dev/null 2>&1
dagrun backfill kite_historic --from 2024-06-04 --to 2024-06-06 --conf "$CONF" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a manual run of the interval counts as done" \
    "$rc:$(q "select count(*) from dagrun.dag_run where dag_id='kite_historic'")" 0:5
dagrun backfill kite_historic --from 2024-06-04 --to 2024-06-05 --rerun --conf "$CONF" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "--rerun runs the 2 intervals again" \
    "$rc:$(q "select count(*) from dagrun.dag_run where dag_id='kite_historic'")" 0:7

# An instant bound is taken as given; a range with no ended interval creates nothing.
dagrun backfill kite_historic --from 2024-06-10T13:00:00Z --to 2024-06-10T13:00:00Z --conf "$CONF" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "an instant range of one tick: one run" \
    "$rc:$(q "select count(*) from dagrun.dag_run where dag_id='kite_historic' and logical_date='2024-06-10T13:00:00Z'")" 0:1
dagrun backfill kite_historic --from 2099-01-01 --to 2099-01-31 >"$T_WORK/out" 2>&1; rc=$?
expect_eq "future intervals: nothing to do, exit 0" "$rc" 0

# Exit code like run: a failed interval makes the backfill exit 1 (every historical request
# refused), and the intervals after it still run.
new_db backfill_fail
dagrun run kite_instruments >/dev/null 2>&1
curl -sf "$SIM_URL/__sim/config?reject_from=2024-06-01" >/dev/null
dagrun backfill kite_historic --from 2024-06-03 --to 2024-06-04 --conf "$CONF" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "failed runs: backfill exits 1" "$rc" 1
expect_eq "both intervals ran and failed" \
    "$(q "select count(*) || ' ' || string_agg(distinct state, ',') from dagrun.dag_run where dag_id='kite_historic'")" "2 failed"
curl -sf "$SIM_URL/__sim/config?reject_from=" >/dev/null
dagrun backfill kite_historic --from 2024-06-03 --to 2024-06-04 --conf "$CONF" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a failed interval is run again by the next backfill" \
    "$rc:$(q "select count(*) filter (where state='success') from dagrun.dag_run where dag_id='kite_historic'")" 0:2

# Ctrl-C: the run in flight is cancelled, no further interval starts, exit 1 (at 5 requests/s
# each run of 5 instruments takes about a second).
new_db backfill_stop
dagrun run kite_instruments >/dev/null 2>&1
curl -sf "$SIM_URL/__sim/config?rate=5" >/dev/null
write_config "$T_WORK/slow.json" 5
"$DR_BUILD/dagrun" -c "$T_WORK/slow.json" backfill kite_historic --from 2024-06-03 --to 2024-06-14 --conf "$CONF" >"$T_WORK/out" 2>&1 &
pid=$!
sleep 1.5
kill -INT $pid
wait $pid; rc=$?
curl -sf "$SIM_URL/__sim/config?rate=0" >/dev/null
expect_eq "Ctrl-C: backfill exits 1" "$rc" 1
n=$(q "select count(*) from dagrun.dag_run where dag_id='kite_historic'")
check "not every one of the 10 intervals was started ($n runs)" test "$n" -lt 10
expect_eq "no run is left queued or running" "$(q "select count(*) from dagrun.dag_run where state in ('queued', 'running')")" 0
expect_eq "the summary says it stopped" "$(jq -r 'select(.backfill) | .stopped' "$T_WORK/out")" true

# A database made before run_type backfill: the run is refused by its check, and initdb
# widens the check in place.
new_db backfill_old
dagrun run kite_instruments >/dev/null 2>&1
q "alter table dagrun.dag_run drop constraint dag_run_run_type_check;
   alter table dagrun.dag_run add constraint dag_run_run_type_check check (run_type in ('scheduled', 'manual', 'test'))" >/dev/null
dagrun backfill kite_historic --from 2024-06-03 --to 2024-06-03 --conf "$CONF" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "an old schema: backfill fails (exit 1)" "$rc" 1
dagrun initdb --schema "$DR_TOP/schema.sql" >/dev/null 2>&1
dagrun initdb --schema "$DR_TOP/schema.sql" >/dev/null 2>&1; rc=$?
expect_eq "initdb upgrades it (and again changes nothing)" "$rc:$(q "select pg_get_constraintdef(oid) like '%backfill%' from pg_constraint where conname = 'dag_run_run_type_check'")" 0:t
dagrun backfill kite_historic --from 2024-06-03 --to 2024-06-03 --conf "$CONF" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "then the backfill runs" "$rc:$(q "select count(*) from dagrun.dag_run where run_type = 'backfill' and state = 'success'")" 0:1

# --max-active 2 on a DAG with max_active_runs 2: the 5 intervals all run, never more than 2 at
# once (run windows overlap at most pairwise).
mkdir -p "$T_WORK/dags"
sed -e 's/^max_active_runs: .*/max_active_runs: 2/' "$DR_TOP/dags/kite_historic.yaml" >"$T_WORK/dags/kite_historic.yaml"
jq --arg d "$T_WORK/dags" '.dags_dir = $d' "$CONFIG" >"$T_WORK/two.json"
new_db backfill_two
dagrun run kite_instruments >/dev/null 2>&1
"$DR_BUILD/dagrun" -c "$T_WORK/two.json" backfill kite_historic --from 2024-06-03 --to 2024-06-07 --max-active 2 --conf "$CONF" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "--max-active 2: exits 0, 5 runs" \
    "$rc:$(q "select count(*) from dagrun.dag_run where dag_id='kite_historic' and state='success'")" 0:5
expect_eq "never more than 2 at once" \
    "$(q "select max(n) from (select (select count(*) from dagrun.dag_run b where b.dag_id=a.dag_id and b.started_at <= a.started_at and b.ended_at > a.started_at) n from dagrun.dag_run a where a.dag_id='kite_historic') x")" 2
stop_sim
finish
