#!/usr/bin/env bash
# Process faults: kill -9 at random moments during load_instruments, then resume: the
# instruments table is identical, value for value, to an uninterrupted load (the
# kite_historic kill trials are in test_runstate.sh); SIGTERM during kite_historic: a clean,
# resumable stop (exit 1, state cancelled) and the resume completes the table.
# DR_KILL_TRIALS (default 3) sets the number of kill trials.
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
TRIALS=${DR_KILL_TRIALS:-3}
NINST=${DR_KILL_INSTRUMENTS:-150000}
BOOT=2016-01-01
END=2024-06-28

latest_run() { q "select run_id from dagrun.dag_run where dag_id='$1' order by queued_at desc limit 1"; }
# every column but updated_at, one line per instrument, hashed
instruments_md5() {
    q "select md5(coalesce(string_agg(i::text, E'\n' order by instrument_token), '')) from (select instrument_token, exchange_token,
       tradingsymbol, name, last_price, expiry, strike, tick_size, lot_size, instrument_type, segment, exchange from instruments) i"
}

# ---- kill -9 during load_instruments (a big, hostile dump: COPY of ~150,000 rows)
start_sim --instruments "$NINST" --rate 0 --hostile-names
write_config "$CONFIG" 0 5 4
new_db ref
t0=$(date +%s.%N)
dagrun run kite_instruments >/dev/null 2>&1 || not_ok "reference load failed"
load_secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
want=$(instruments_md5)
expect_eq "reference load: all instruments" "$(q 'select count(*) from instruments')" "$NINST"
echo "# an uninterrupted load of $NINST instruments takes $load_secs s"
for trial in $(seq 1 "$TRIALS"); do
    new_db kill_load
    "$DR_BUILD/dagrun" -c "$CONFIG" run kite_instruments >"$T_WORK/load.out" 2>&1 &
    pid=$!
    at=$(awk -v s=$RANDOM -v t="$load_secs" 'BEGIN { srand(s); printf "%.2f", (0.1 + rand() * 0.8) * t }')
    sleep "$at"
    alive=0; kill -0 $pid 2>/dev/null && alive=1
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    run=$(latest_run kite_instruments)
    state=$(q "select state from dagrun.dag_run where run_id='$run'")
    echo "# trial $trial: killed after $at s (alive: $alive), run $state, $(q 'select count(*) from instruments') instruments stored"
    if [ -z "$run" ]; then
        # killed before the run was created: nothing written at all
        expect_eq "load trial $trial: killed before the run existed, nothing stored" "$(q 'select count(*) from instruments')" 0
        dagrun run kite_instruments >"$T_WORK/resume.out" 2>&1; rc=$?
    else
        check "load trial $trial: the load is all or nothing" \
            test "$(q 'select count(*) from instruments')" = 0 -o "$(q 'select count(*) from instruments')" = "$NINST"
        dagrun resume "$run" >"$T_WORK/resume.out" 2>&1; rc=$?
        expect_eq "load trial $trial: run state success after resume" "$(q "select state from dagrun.dag_run where run_id='$run'")" success
    fi
    expect_eq "load trial $trial: resume exits 0" "$rc" 0
    expect_eq "load trial $trial: table identical to an uninterrupted load (every value)" "$(instruments_md5)" "$want"
    [ "$T_FAIL" = 0 ] || tail -n 5 "$T_WORK/resume.out"
done
stop_sim

# ---- SIGTERM during kite_historic: exit 1, cancelled, resumable; resume completes the table
start_sim --instruments 30 --rate 15 --burst 1
write_config "$CONFIG" 15 5 4
new_db term
dagrun run kite_instruments >/dev/null 2>&1
CONF="{\"limit\": 30, \"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}"
"$DR_BUILD/dagrun" -c "$CONFIG" run kite_historic --conf "$CONF" >"$T_WORK/term.out" 2>&1 &
pid=$!
for i in $(seq 1 100); do [ "$(q 'select count(*) from kite_ohlcv_historic')" -gt 0 ] && break; sleep 0.05; done
sleep 0.5
t0=$(date +%s.%N)
kill -TERM $pid
timeout 30 tail --pid=$pid -f /dev/null; wait $pid; rc=$?
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
run=$(latest_run kite_historic)
expect_eq "SIGTERM: exits 1" "$rc" 1
expect_le "SIGTERM: stops within 5 s" "$secs" 5
expect_eq "SIGTERM: run state cancelled" "$(q "select state from dagrun.dag_run where run_id='$run'")" cancelled
expect_eq "SIGTERM: no item left running" "$(q "select count(*) from dagrun.task_instance where run_id='$run' and state = 'running'")" 0
partial_items=$(q "select count(*) from dagrun.task_instance where run_id='$run' and task_id='upsert' and state='success'")
echo "# SIGTERM after some items: $partial_items instruments committed"
# every committed instrument is complete (all or nothing per instrument)
for tok in $(q "select distinct instrument_token from kite_ohlcv_historic order by 1"); do
    sim_dump "$tok" day "$BOOT" "$END"
done | sort >"$T_WORK/expected"
stored_rows >"$T_WORK/stored"
check "SIGTERM: each stored instrument is complete" cmp -s "$T_WORK/stored" "$T_WORK/expected"
dagrun resume "$run" >"$T_WORK/resume.out" 2>&1; rc=$?
expect_eq "SIGTERM: resume exits 0" "$rc" 0
expect_eq "SIGTERM: run state success after resume" "$(q "select state from dagrun.dag_run where run_id='$run'")" success
expected_rows "$BOOT" "$END" >"$T_WORK/expected"; stored_rows >"$T_WORK/stored"
check "SIGTERM: resume completes the table exactly" cmp -s "$T_WORK/stored" "$T_WORK/expected"
stop_sim
finish
