#!/usr/bin/env bash
# Database faults: PostgreSQL restarted in the middle of a run (workers and the coordinator
# reconnect, items in flight restart from their start, every candle stored exactly once),
# the database unreachable at start (exit 1, one line naming the host), and a lock held on
# the target table while lock_timeout / statement_timeout are set (the item retries, the run
# goes on); with `ulimit -n 12` or fewer free connections (a role's or database's CONNECTION
# LIMIT) than the run needs, the run is refused before it starts (exit 1). Restarts the
# cluster the runner started (the socket folder in DATABASE_URL's host=...).
# DR_DB_RESTART_TRIALS (default 1) repeats the restart scenario.
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
BOOT=2016-01-01
END=2024-06-28
TRIALS=${DR_DB_RESTART_TRIALS:-1}
CONF="{\"limit\": 40, \"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}"
PGDIR=$(sed -n 's/.*[?&]host=\([^&]*\).*/\1/p' <<<"$DR_ADMIN_URL")

mkdir -p "$T_WORK/dags"
sed -e 's/retry_delay: 2s/retry_delay: 200ms/' -e 's/max_retry_delay: 5m/max_retry_delay: 2s/' \
    -e 's/retries: 3/retries: 6/g' "$DR_TOP/dags/kite_historic.yaml" >"$T_WORK/dags/kite_historic.yaml"
cp "$DR_TOP/dags/kite_instruments.yaml" "$T_WORK/dags/"
start_sim --instruments 40 --rate 20 --burst 1
write_config "$CONFIG.in" 20 5 4
jq --arg d "$T_WORK/dags" '.dags_dir = $d' "$CONFIG.in" >"$CONFIG"

same_as_sim() {
    expected_rows "$BOOT" "$END" >"$T_WORK/expected"; stored_rows >"$T_WORK/stored"
    cmp -s "$T_WORK/stored" "$T_WORK/expected"
}
# wait_rows N: until kite_ohlcv_historic has at least N rows (at most 10 s)
wait_rows() {
    local i
    for i in $(seq 1 200); do
        [ "$(q 'select count(*) from kite_ohlcv_historic' 2>/dev/null || echo 0)" -ge "$1" ] && return 0
        sleep 0.05
    done
    return 1
}
run_of() { q "select state from dagrun.dag_run where dag_id='kite_historic'"; }

# ---- PostgreSQL restarted mid-run (40 instruments at 20 requests/s: about 4 s)
if [ -z "$PGDIR" ] || [ ! -d "$PGDIR/data" ]; then
    not_ok "cannot find the sandbox cluster folder from DATABASE_URL ($DR_ADMIN_URL)"
else
    for trial in $(seq 1 "$TRIALS"); do
        new_db restart
        dagrun run kite_instruments >/dev/null 2>&1
        "$DR_BUILD/dagrun" -c "$CONFIG" run kite_historic --conf "$CONF" >"$T_WORK/restart.out" 2>&1 &
        pid=$!
        wait_rows 1000
        sleep "$(awk -v s=$RANDOM 'BEGIN { srand(s); printf "%.2f", rand() * 1.5 }')"
        before=$(q 'select count(*) from kite_ohlcv_historic')
        "$DR_TOP/tests/pg_sandbox.sh" restart "$PGDIR" >/dev/null 2>&1 || not_ok "trial $trial: restart failed"
        timeout 120 tail --pid=$pid -f /dev/null; wait $pid; rc=$?
        echo "# restart trial $trial: $before candles stored before the restart"
        expect_eq "restart trial $trial: run exits 0" "$rc" 0
        expect_eq "restart trial $trial: run state success" "$(run_of)" success
        check "restart trial $trial: every candle stored, as served" same_as_sim
        expect_eq "restart trial $trial: each candle exactly once" \
            "$(q "select count(*) - count(distinct (instrument_token, candle_interval, ts)) from kite_ohlcv_historic")" 0
        expect_eq "restart trial $trial: every item success" \
            "$(q "select count(*) from dagrun.task_instance where state <> 'success'")" 0
        check "restart trial $trial: the lost connection was noticed and reopened" \
            grep -q 'database connection reopened\|terminating connection\|server closed the connection' "$T_WORK/restart.out"
        check "restart trial $trial: no crash" bash -c "! grep -qiE 'segmentation|sanitizer|core dumped' '$T_WORK/restart.out'"
        [ "$T_FAIL" = 0 ] || tail -n 15 "$T_WORK/restart.out"
    done
fi

# ---- database unreachable at start: exit 1, one line naming the host, no password
for url in "postgresql:///dagrun?host=$T_WORK/nosuchdir&port=5999&user=postgres&password=pw_Secret_71" \
           "postgresql://dagrun:pw_Secret_71@127.0.0.1:1/dagrun"; do
    out=$(DATABASE_URL=$url "$DR_BUILD/dagrun" -c "$CONFIG" run kite_instruments 2>&1); rc=$?
    expect_eq "unreachable database: exit 1 ($url)" "$rc" 1
    expect_eq "unreachable database: one line" "$(wc -l <<<"$out")" 1
    check "unreachable database: the line names the host ($out)" grep -qE "cannot connect to database at (socket $T_WORK/nosuchdir|127\.0\.0\.1 \(port 1\))" <<<"$out"
    check "unreachable database: no password in the message" bash -c "! grep -q pw_Secret_71 <<<'$out'"
done

# ---- a lock on the target table while lock_timeout / statement_timeout is set: items
# waiting for it fail with 55P03 / 57014, are retried, the run completes
for setting in "lock_timeout=300" "statement_timeout=1000"; do
    name=${setting%%=*}
    new_db "$name"
    dagrun run kite_instruments >/dev/null 2>&1
    PGOPTIONS="-c $setting" "$DR_BUILD/dagrun" -c "$CONFIG" run kite_historic --conf "$CONF" >"$T_WORK/$name.out" 2>&1 &
    pid=$!
    wait_rows 1000
    psql -qAtX "$DATABASE_URL" -c "BEGIN" -c "LOCK TABLE kite_ohlcv_historic IN ACCESS EXCLUSIVE MODE" \
        -c "SELECT pg_sleep(3)" -c "COMMIT" >/dev/null
    timeout 120 tail --pid=$pid -f /dev/null; wait $pid; rc=$?
    retried=$(q "select count(*) from dagrun.task_instance where task_id='upsert' and try_number > 1")
    echo "# $setting: $retried items retried after the lock"
    expect_eq "$name: run exits 0" "$rc" 0
    expect_eq "$name: run state success" "$(run_of)" success
    check "$name: items hit by the lock were retried" test "$retried" -gt 0
    check "$name: the cause is logged" grep -q 'lock timeout\|statement timeout' "$T_WORK/$name.out"
    check "$name: every candle stored, as served" same_as_sim
done


# ---- a run's file descriptors and database connections are checked before it starts
# (issue 12.14): with `ulimit -n 12`, or fewer free connections than one per worker plus
# the recorder's two, the run stops at once (exit 1) with what to change, and is not recorded.
new_db limits
sim_reset
out=$(timeout 120 bash -c 'ulimit -n 12; exec "$0" -c "$1" run kite_instruments' \
        "$DR_BUILD/dagrun" "$CONFIG" 2>&1); rc=$?
expect_eq "ulimit -n 12: the run stops with exit 1" "$rc" 1
check "ulimit -n 12: says the process is out of file descriptors" grep -q 'out of file descriptors' <<<"$out"
check "ulimit -n 12: the hint names ulimit -n" grep -q 'ulimit -n' <<<"$out"
expect_eq "ulimit -n 12: no request was sent" "$(sim_stat .requests)" 0
expect_eq "ulimit -n 12: no run was recorded" "$(q "select count(*) from dagrun.dag_run")" 0
# CONNECTION LIMIT binds roles that are not superusers: one with what a run needs
role=t_limited_$$
psql -qAtX "$DATABASE_URL" -v ON_ERROR_STOP=1 \
    -c "CREATE ROLE $role LOGIN CONNECTION LIMIT 4" \
    -c "GRANT USAGE, CREATE ON SCHEMA dagrun, public TO $role" \
    -c "GRANT ALL ON ALL TABLES IN SCHEMA dagrun, public TO $role" \
    -c "GRANT ALL ON ALL SEQUENCES IN SCHEMA dagrun, public TO $role" >/dev/null
LIMITED_URL="$DATABASE_URL&user=$role"
# 4 workers with up to 4 database connections need 6 more; the role has 3 left beside the
# run's own
jq '.db_connections = 4' "$CONFIG" >"$T_WORK/four_conns.json"
out=$(DATABASE_URL=$LIMITED_URL timeout 120 "$DR_BUILD/dagrun" -c "$T_WORK/four_conns.json" run kite_instruments 2>&1); rc=$?
expect_eq "role CONNECTION LIMIT 4, 4 workers: refused with exit 1" "$rc" 1
check "role CONNECTION LIMIT: the message counts the connections" \
    grep -q "free connections (role $role: CONNECTION LIMIT 4, 1 in use); a run with 4 workers needs up to 6 more (one per worker up to db_connections, 4 here" <<<"$out"
check "role CONNECTION LIMIT: the hint says lower max_active_tasks" grep -q 'lower max_active_tasks' <<<"$out"
expect_eq "role CONNECTION LIMIT: no request, no run recorded" \
    "$(sim_stat .requests) $(q "select count(*) from dagrun.dag_run")" "0 0"
# with db_connections 1 the same 4 workers need 3: the run goes ahead
jq '.db_connections = 1' "$CONFIG" >"$T_WORK/one_conn.json"
DATABASE_URL=$LIMITED_URL timeout 120 "$DR_BUILD/dagrun" -c "$T_WORK/one_conn.json" run kite_instruments \
    >"$T_WORK/one_conn.out" 2>&1; rc=$?
expect_eq "role CONNECTION LIMIT 4, 4 workers, db_connections 1: the run goes ahead (exit 0)" "$rc" 0
jq '.max_active_tasks = 1' "$CONFIG" >"$T_WORK/one_worker.json"
DATABASE_URL=$LIMITED_URL timeout 120 "$DR_BUILD/dagrun" -c "$T_WORK/one_worker.json" run kite_instruments \
    >"$T_WORK/one_worker.out" 2>&1; rc=$?
expect_eq "role CONNECTION LIMIT 4, 1 worker: the run goes ahead (exit 0)" "$rc" 0
# the database's own limit counts too
db=$(q "select current_database()")
psql -qAtX "$DR_ADMIN_URL" -c "ALTER ROLE $role CONNECTION LIMIT -1" -c "ALTER DATABASE $db CONNECTION LIMIT 3" >/dev/null
out=$(DATABASE_URL=$LIMITED_URL timeout 120 "$DR_BUILD/dagrun" -c "$T_WORK/one_worker.json" run kite_instruments 2>&1); rc=$?
expect_eq "database CONNECTION LIMIT 3, 1 worker: refused with exit 1" "$rc" 1
check "database CONNECTION LIMIT: the message names the database" \
    grep -q "database $db: CONNECTION LIMIT 3, 1 in use" <<<"$out"
psql -qAtX "$DR_ADMIN_URL" -c "ALTER DATABASE $db CONNECTION LIMIT -1" >/dev/null
psql -qAtX "$DR_ADMIN_URL" -c "DROP OWNED BY $role" -c "DROP ROLE $role" >/dev/null 2>&1
stop_sim
finish
