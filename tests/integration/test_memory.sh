#!/usr/bin/env bash
# Memory: dagrun under valgrind memcheck on small simulator runs (5 instruments): the
# instrument load, a clean kite_historic run, one whose items fail at a chunk and its
# resume, one under a mix of broker faults, a fatal wrong-token run, `dagrun test --junit`,
# a 20000-item map and its resume, and refused input files. Each must report no definite or
# indirect leak and no invalid read or write (valgrind exits 99 otherwise).
# Skipped (not failed) when valgrind is not installed: `make valgrind` installs it.
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
if ! command -v valgrind >/dev/null; then
    ok "# skip: valgrind is not installed"
    finish
fi
VG=(valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99
    --show-leak-kinds=definite,indirect --num-callers=30 --child-silent-after-fork=yes)
mkdir -p "$T_WORK/dags"
# The fault mix below fails about 6 requests in 10: enough retries that every item gets through.
sed -e 's/retries: 3/retries: 6/' -e 's/retry_delay: 2s/retry_delay: 100ms/' -e 's/max_retry_delay: 5m/max_retry_delay: 1s/' \
    "$DR_TOP/dags/kite_historic.yaml" >"$T_WORK/dags/kite_historic.yaml"
cp "$DR_TOP/dags/kite_instruments.yaml" "$DR_TOP/dags/ci/kite_smoke.yaml" "$T_WORK/dags/"
start_sim --instruments 5 --rate 0 --hostile-names --seed 4
write_config "$CONFIG.in" 0 6 4
jq --arg d "$T_WORK/dags" '.dags_dir = $d | .sources.kite.timeout_ms = 1000 | .sources.kite.retry_delay_ms = 10
    | .sources.kite.max_body_bytes = 262144' "$CONFIG.in" >"$CONFIG"
CONF='{"limit": 5, "bootstrap_date": "2020-01-01", "end_date": "2024-06-28"}'

# vg NAME WANT_EXIT ARGS...: dagrun under memcheck
vg() {
    local name=$1 want=$2; shift 2
    local log=$T_WORK/vg.$name.log
    timeout 300 "${VG[@]}" --log-file="$log" "$DR_BUILD/dagrun" -c "$CONFIG" "$@" >"$T_WORK/$name.out" 2>&1
    local rc=$?
    local errs; errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -n 1)
    if [[ $rc =~ ^($want)$ ]] && [ "$errs" = 0 ]; then ok "valgrind $name: exit $rc, no leak, no invalid access"
    else
        not_ok "valgrind $name: exit $rc (want $want), $errs errors"
        grep -E 'definitely|indirectly|Invalid|uninitialised' -A12 "$log" | head -n 60
        grep -vE '"level": *"(info|warning)' "$T_WORK/$name.out" | tail -n 20
    fi
}
new_db memory
vg load 0 run kite_instruments
vg historic 0 run kite_historic --conf "$CONF"
# every item fails at its second chunk (2022 on), then the resume goes on from its checkpoint
q "truncate kite_ohlcv_historic" >/dev/null
curl -sf "$SIM_URL/__sim/config?reject_from=2022-01-01" >/dev/null
vg prefix 1 run kite_historic --conf '{"limit": 5, "bootstrap_date": "2016-01-01", "end_date": "2024-06-28"}'
curl -sf "$SIM_URL/__sim/config?reject_from=" >/dev/null
vg resume 0 resume "$(q "select run_id from dagrun.dag_run where state = 'failed' order by queued_at desc limit 1")"
q "truncate kite_ohlcv_historic" >/dev/null
curl -sf "$SIM_URL/__sim/config?fault_5xx=0.2&fault_truncate=0.2&fault_reset=0.2&fault_bad_prices=0.3&fault_malformed=0.3&fault_wrong_type=0.1&fault_endless=0.1&fault_slow=0.1&slow_ms=1500" >/dev/null
vg historic_faults 0 run kite_historic --conf "$CONF"
curl -sf "$SIM_URL/__sim/config?fault_5xx=0&fault_truncate=0&fault_reset=0&fault_bad_prices=0&fault_malformed=0&fault_wrong_type=0&fault_endless=0&fault_slow=0&fault_wrong_shape=1" >/dev/null
q "truncate kite_ohlcv_historic" >/dev/null
vg wrong_shape "1|3" run kite_historic --conf "$CONF"
curl -sf "$SIM_URL/__sim/config?fault_wrong_shape=0" >/dev/null
KITE_ACCESS_TOKEN=wrong vg wrong_token 1 run kite_historic --conf "$CONF"
vg junit 0 test kite_smoke --junit "$T_WORK/report.xml"
# a 20000-item map of noop and its resume with one item failed: the executor's per-item
# layout (units, records, keys) and the resume's paged load of 20001 task instances
sed 's/n: 1000000/n: 20000/' "$DR_TOP/tests/bench/dags/bench_map.yaml" >"$T_WORK/dags/bench_map.yaml"
vg map 0 run bench_map
run=$(q "select run_id from dagrun.dag_run where dag_id = 'bench_map' order by queued_at desc limit 1")
q "update dagrun.task_instance set state = 'failed', ended_at = null where run_id = '$run' and task_id = 'step' and map_index = 7;
   update dagrun.dag_run set state = 'failed' where run_id = '$run'" >/dev/null
vg map_resume 0 resume "$run"
expect_eq "the resume ran the one failed item again and kept the others" \
    "$(q "select count(*) filter (where state = 'success') || ':' || count(*) filter (where ended_at is null) from dagrun.task_instance where run_id = '$run'")" "20001:0"
printf 'dag_id: x\nd: &a [1]\ntasks:\n  a: { plugin: noop, params: *a }\n' >"$T_WORK/alias.yaml"
vg bad_dag 2 validate "$T_WORK/alias.yaml"
printf '{\n  "log_format": "json",\n  "dags_dir": "bad\xff"\n}\n' >"$T_WORK/utf8.json"
CONFIG=$T_WORK/utf8.json vg bad_config 2 list
stop_sim
finish
