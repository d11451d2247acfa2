#!/usr/bin/env bash
# max_active_runs holds across processes: two schedulers started together never run more
# than the limit at once, and of two manual `dagrun run`s started together over a limit of
# one, one runs and the other is refused (exit 1, nothing stored for it).
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
export SIM_URL=http://127.0.0.1:9   # no broker: the DAGs only sleep
write_config "$CONFIG.in" 0 5 2
mkdir -p "$T_WORK/dags"
start=$(date -u -d '5 days ago' +%Y-%m-%d)
cat >"$T_WORK/dags/slow.yaml" <<YAML
dag_id: slow_catchup
schedule: "@daily"
start_date: $start
catchup: true
max_active_runs: 2
tasks:
  a: { plugin: sleep, params: { ms: 1500 } }
YAML
cat >"$T_WORK/dags/one.yaml" <<YAML
dag_id: one_at_a_time
max_active_runs: 1
tasks:
  a: { plugin: sleep, params: { ms: 1500 } }
YAML
jq --arg d "$T_WORK/dags" '.dags_dir = $d' "$CONFIG.in" >"$CONFIG"
# most runs of DAG running at one instant (a run's start inside another's span)
most_at_once() {
    q "select coalesce(max(n), 0) from (select (select count(*) from dagrun.dag_run b
         where b.dag_id = a.dag_id and b.started_at <= a.started_at and a.started_at < b.ended_at) n
       from dagrun.dag_run a where a.dag_id = '$1') x"
}

# ---- two schedulers at once, max_active_runs 2, 5 intervals due
for trial in 1 2 3; do
    new_db sched
    "$DR_BUILD/dagrun" -c "$CONFIG" scheduler --once >"$T_WORK/s1.out" 2>&1 &
    p1=$!
    "$DR_BUILD/dagrun" -c "$CONFIG" scheduler --once >"$T_WORK/s2.out" 2>&1 &
    p2=$!
    wait $p1; r1=$?; wait $p2; r2=$?
    expect_eq "schedulers trial $trial: both exit 0" "$r1:$r2" "0:0"
    expect_le "schedulers trial $trial: at most 2 runs at once" "$(most_at_once slow_catchup)" 2
    expect_eq "schedulers trial $trial: every run fired succeeded" \
        "$(q "select count(*) from dagrun.dag_run where state <> 'success'")" 0
done

# ---- two manual runs at once, max_active_runs 1
for trial in 1 2 3; do
    new_db manual
    "$DR_BUILD/dagrun" -c "$CONFIG" run one_at_a_time >"$T_WORK/m1.out" 2>&1 &
    p1=$!
    "$DR_BUILD/dagrun" -c "$CONFIG" run one_at_a_time >"$T_WORK/m2.out" 2>&1 &
    p2=$!
    wait $p1; r1=$?; wait $p2; r2=$?
    expect_eq "manual trial $trial: one runs, one is refused" "$(printf '%s\n' $r1 $r2 | sort | paste -sd:)" "0:1"
    check "manual trial $trial: the refusal names the limit" \
        grep -q "max_active_runs 1): this run is not started" "$T_WORK/m1.out" "$T_WORK/m2.out"
    expect_eq "manual trial $trial: one run stored, success" \
        "$(q "select count(*) || ':' || min(state) from dagrun.dag_run where dag_id = 'one_at_a_time'")" "1:success"
done
# one after the other: both run
new_db manual_seq
"$DR_BUILD/dagrun" -c "$CONFIG" run one_at_a_time >/dev/null 2>&1; r1=$?
"$DR_BUILD/dagrun" -c "$CONFIG" run one_at_a_time >/dev/null 2>&1; r2=$?
expect_eq "manual runs one after the other both run" "$r1:$r2" "0:0"
finish
