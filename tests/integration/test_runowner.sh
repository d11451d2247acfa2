#!/usr/bin/env bash
# One run, one owner: a process stopped (SIGSTOP) or cut off from the database past
# heartbeat_timeout_sec loses its run to `dagrun resume`, stops at once when it wakes (exit 1,
# no end state written, requests not doubled) and the resumer finishes the run; a resume
# waiting for the lock of a run that ends meanwhile does not run it again; cancel of a run
# whose process is gone cancels it, and runs/status mark a stale heartbeat.
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
END=2024-06-28
BOOT=2016-01-01
PGDIR=$(sed -n 's/.*[?&]host=\([^&]*\).*/\1/p' <<<"$DR_ADMIN_URL")
# historical requests answered with candles (a 429 from the simulator's limiter is retried)
answered() { sim_stat '.historical_requests - (.by_status["429"] // 0)'; }
latest_run() { q "select run_id from dagrun.dag_run where dag_id='$1' order by queued_at desc limit 1"; }
CONF="{\"limit\": 20, \"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}"
# wait_for SQL: until the query prints t (at most 20 s)
wait_for() {
    local i
    for i in $(seq 1 400); do [ "$(q "$1" 2>/dev/null)" = t ] && return 0; sleep 0.05; done
    return 1
}

start_sim --instruments 20 --rate 8 --burst 1
write_config "$CONFIG" 8 5 4

# The requests an uninterrupted run makes.
new_db ref
dagrun run kite_instruments >/dev/null 2>&1
sim_reset
dagrun run kite_historic --conf "$CONF" >/dev/null 2>&1 || not_ok "reference run failed"
REF=$(answered)
echo "# an uninterrupted run makes $REF requests"
new_db ref10
dagrun run kite_instruments >/dev/null 2>&1
sim_reset
C10="{\"limit\": 10, \"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}"
dagrun run kite_historic --conf "$C10" >/dev/null 2>&1 || not_ok "reference run failed"
REF10=$(answered)

# takeover MODE: run A, stop it past the timeout (MODE restart: the database is restarted
# meanwhile), resume B takes over, A continues and must stop.
takeover() {
    local mode=$1
    new_db "own_$mode"
    dagrun run kite_instruments >/dev/null 2>&1
    sim_reset
    "$DR_BUILD/dagrun" -c "$CONFIG" run kite_historic --conf "$CONF" >"$T_WORK/a.out" 2>&1 &
    local a=$!
    wait_for "select count(*) >= 3 from dagrun.task_instance where task_id = 'upsert' and state = 'success'"
    kill -STOP $a
    [ "$mode" = restart ] && { "$DR_TOP/tests/pg_sandbox.sh" restart "$PGDIR" >/dev/null 2>&1 || not_ok "$mode: restart failed"; }
    sleep 6     # past heartbeat_timeout_sec (5)
    local run
    run=$(latest_run kite_historic)
    "$DR_BUILD/dagrun" -c "$CONFIG" resume "$run" >"$T_WORK/b.out" 2>&1 &
    local b=$!
    wait_for "select pid = $b from dagrun.dag_run where run_id = '$run'" || not_ok "$mode: the resume did not take the run"
    kill -CONT $a
    timeout 60 tail --pid=$a -f /dev/null; wait $a; local rca=$?
    timeout 60 tail --pid=$b -f /dev/null; wait $b; local rcb=$?
    expect_eq "$mode: the stopped process exits 1" "$rca" 1
    check "$mode: it says the run was taken over" grep -q "taken over by another process" "$T_WORK/a.out"
    expect_eq "$mode: the resume exits 0" "$rcb" 0
    expect_eq "$mode: the run's end state is the resumer's (success, its pid)" \
        "$(q "select state || ':' || pid from dagrun.dag_run where run_id = '$run'")" "success:$b"
    expected_rows "$BOOT" "$END" >"$T_WORK/expected"; stored_rows >"$T_WORK/stored"
    check "$mode: the table is complete, each candle once" cmp -s "$T_WORK/stored" "$T_WORK/expected"
    expect_eq "$mode: every item success" \
        "$(q "select count(*) from dagrun.task_instance where run_id = '$run' and state <> 'success'")" 0
    local n
    n=$(answered)
    # Only what was in flight when the first process woke may be asked twice (4 workers).
    expect_le "$mode: requests not doubled ($n, an uninterrupted run makes $REF)" "$n" $((REF + 8))
    [ "$T_FAIL" = 0 ] || { tail -n 5 "$T_WORK/a.out"; tail -n 5 "$T_WORK/b.out"; }
}
takeover sigstop
if [ -n "$PGDIR" ] && [ -d "$PGDIR/data" ]; then takeover restart
else not_ok "cannot find the sandbox cluster folder from DATABASE_URL"; fi

# ---- resume while the run is still running and ends inside the lock wait: nothing re-run
new_db wait
dagrun run kite_instruments >/dev/null 2>&1
sim_reset
"$DR_BUILD/dagrun" -c "$CONFIG" run kite_historic --conf "$C10" >"$T_WORK/a.out" 2>&1 &
a=$!
wait_for "select count(*) >= 1 from dagrun.task_instance where task_id = 'upsert' and state = 'success'"
run=$(latest_run kite_historic)
dagrun resume "$run" >"$T_WORK/b.out" 2>&1; rcb=$?
wait $a; rca=$?
first=$(answered)
expect_eq "resume during the run: the run exits 0" "$rca" 0
expect_eq "resume during the run: the resume exits 0" "$rcb" 0
check "resume during the run: it says the run already succeeded" grep -q "already succeeded" "$T_WORK/b.out"
expect_eq "resume during the run: requests of one run only" "$first" "$REF10"
expect_eq "resume during the run: run success" "$(q "select state from dagrun.dag_run where run_id = '$run'")" success

# ---- cancel of a run whose process is gone; stale runs in runs/status
new_db dead
dagrun run kite_instruments >/dev/null 2>&1
"$DR_BUILD/dagrun" -c "$CONFIG" run kite_historic --conf "$CONF" >"$T_WORK/a.out" 2>&1 &
a=$!
wait_for "select count(*) >= 2 from dagrun.task_instance where task_id = 'upsert' and state = 'success'"
kill -9 $a; wait $a 2>/dev/null
run=$(latest_run kite_historic)
sleep 6
dagrun runs >"$T_WORK/runs.out" 2>&1
dagrun runs --wide >"$T_WORK/runs_wide.out" 2>&1
check "runs: a dead run is shown stale" grep -qw "stale" "$T_WORK/runs.out"
check "runs --wide: with its state and age" grep -q "running (stale [0-9]*s)" "$T_WORK/runs_wide.out"
check "runs: with the resume hint" grep -q "dagrun resume $run" "$T_WORK/runs.out"
check "runs (80 columns): a dead run is shown stale" grep -q " stale " <<<"$(dagrun runs)"
dagrun status "$run" >"$T_WORK/status.out" 2>&1
check "status: a dead run is shown stale" grep -q "running (stale [0-9]*s)" "$T_WORK/status.out"
check "status: with the resume hint" grep -q "dagrun resume $run" "$T_WORK/status.out"
expect_eq "runs --json: stale true" "$(dagrun runs --json | jq -r ".[] | select(.run_id == \"$run\") | .stale")" true
dagrun cancel "$run" >"$T_WORK/cancel.out" 2>&1; rc=$?
expect_eq "cancel of a dead run exits 0" "$rc" 0
expect_eq "cancel of a dead run: cancelled, no request left" \
    "$(q "select state || ':' || cancel_requested from dagrun.dag_run where run_id = '$run'")" "cancelled:false"
dagrun resume "$run" >"$T_WORK/resume.out" 2>&1; rc=$?
expect_eq "resume after cancelling a dead run exits 0" "$rc" 0
expect_eq "resume after cancelling a dead run: success" "$(q "select state from dagrun.dag_run where run_id = '$run'")" success

# A stopped process (SIGSTOP past the timeout: its lock is still held) is cancelled the same
# way; the resume takes the run over from it, and when it wakes it stops.
new_db stopped
dagrun run kite_instruments >/dev/null 2>&1
"$DR_BUILD/dagrun" -c "$CONFIG" run kite_historic --conf "$CONF" >"$T_WORK/a.out" 2>&1 &
a=$!
wait_for "select count(*) >= 2 from dagrun.task_instance where task_id = 'upsert' and state = 'success'"
kill -STOP $a
sleep 6
run=$(latest_run kite_historic)
dagrun cancel "$run" >"$T_WORK/cancel.out" 2>&1; rc=$?
expect_eq "cancel of a stopped run: exits 0, cancelled"     "$rc:$(q "select state || ':' || cancel_requested from dagrun.dag_run where run_id = '$run'")" "0:cancelled:false"
dagrun resume "$run" >"$T_WORK/resume.out" 2>&1; rc=$?
kill -CONT $a
timeout 60 tail --pid=$a -f /dev/null; wait $a; rca=$?
expect_eq "cancel of a stopped run: the resume exits 0, run success"     "$rc:$(q "select state from dagrun.dag_run where run_id = '$run'")" "0:success"
expect_eq "cancel of a stopped run: the stopped process exits 1 when it wakes" "$rca" 1
check "cancel of a stopped run: it says the run was taken over" grep -q "taken over by another process" "$T_WORK/a.out"

# A cancel flag left on a dead run (the process died before seeing it) does not cancel the resume.
new_db flag
dagrun run kite_instruments >/dev/null 2>&1
"$DR_BUILD/dagrun" -c "$CONFIG" run kite_historic --conf "$CONF" >"$T_WORK/a.out" 2>&1 &
a=$!
wait_for "select count(*) >= 2 from dagrun.task_instance where task_id = 'upsert' and state = 'success'"
kill -9 $a; wait $a 2>/dev/null
run=$(latest_run kite_historic)
q "update dagrun.dag_run set cancel_requested = true where run_id = '$run'" >/dev/null
dagrun resume "$run" >"$T_WORK/resume.out" 2>&1; rc=$?
expect_eq "a stale cancel flag: resume exits 0" "$rc" 0
expect_eq "a stale cancel flag: run success" "$(q "select state from dagrun.dag_run where run_id = '$run'")" success
stop_sim
finish
