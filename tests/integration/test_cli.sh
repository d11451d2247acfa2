#!/usr/bin/env bash
# The command line end to end: validate, bad fixtures, next, --help, run, test --junit,
# runs only of files in dags_dir, a dag_id in two files refused everywhere.
source "$(dirname "$0")/lib.sh"
new_db cli
CONFIG=$T_WORK/config.json
SIM_URL=http://127.0.0.1:9 write_config "$CONFIG"
export SIM_URL=http://127.0.0.1:9
# runs by file path must name a file in dags_dir: a copy of the shipped DAGs the test adds to.
cp -r "$DR_TOP/dags" "$T_WORK/dags"
jq --arg d "$T_WORK/dags" '.dags_dir = $d' "$CONFIG" >"$CONFIG.tmp" && mv "$CONFIG.tmp" "$CONFIG"

# validate: the shipped DAGs are valid.
check "validate dags/ exits 0" dagrun validate "$DR_TOP/dags"

# every broken fixture exits 2 with the expected file:line:col on line 1 of the file
# (the fixtures use the test plugins built from tests/plugins/).
jq --arg p "$DR_BUILD/tests/plugins" '.plugin_dir = $p' "$CONFIG" >"$T_WORK/fixtures.json"
for f in "$DR_TOP"/tests/fixtures/dags/bad/*.yaml; do
    want=$(head -n 1 "$f" | sed -n 's/^# expect: \([0-9]*:[0-9]*\):.*/\1/p')
    [ -n "$want" ] || continue
    out=$("$DR_BUILD/dagrun" -c "$T_WORK/fixtures.json" validate "$f" 2>&1); rc=$?
    if [ $rc = 2 ] && grep -qF "$f:$want:" <<<"$out"; then ok "validate $(basename "$f") -> 2 at $want"
    else not_ok "validate $(basename "$f"): exit $rc, output: $out"; fi
done

# next: three UTC lines and nothing else.
out=$(dagrun next --cron '0 9 * * 1-5' --tz Asia/Kolkata --from 2026-03-06T00:00:00Z -n 3 2>&1)
expect_eq "next --cron prints three UTC times" "$out" $'2026-03-06T03:30:00Z\n2026-03-09T03:30:00Z\n2026-03-10T03:30:00Z'
out=$(dagrun next --cron '0 0 30 2 *' -n 1 2>&1); rc=$?
expect_eq "next of Feb 30 exits 2" "$rc" 2
out=$(dagrun next --cron '30 18 * * 8' 2>&1); rc=$?
check "bad cron names the field" grep -q 'day of week 8 out of range' <<<"$out"
expect_eq "bad cron exits 2" "$rc" 2

# --help for every command, on stdout, exit 0.
for c in validate list show plugins next initdb run test scheduler runs status resume cancel pause unpause; do
    out=$(dagrun "$c" --help 2>/dev/null); rc=$?
    if [ $rc = 0 ] && grep -q "usage: dagrun" <<<"$out"; then ok "$c --help"; else not_ok "$c --help (exit $rc)"; fi
done
out=$(dagrun frobnicate 2>&1); rc=$?
expect_eq "unknown command exits 2" "$rc" 2

# list / show / plugins
check "list shows kite_historic" grep -q kite_historic <<<"$(dagrun list)"
check "show --dot is a digraph" grep -q '^digraph' <<<"$(dagrun show kite_historic --dot)"
check "show prints resolved params" grep -q 'candle_interval' <<<"$(dagrun show kite_historic)"
check "plugins lists fetch_candles with params" grep -q 'fetch_candles' <<<"$(dagrun plugins)"

# --conf: unknown keys are refused before anything runs.
out=$(dagrun run ci_smoke --conf '{"no_such_param": 1}' 2>&1); rc=$?
expect_eq "unknown --conf key exits 2" "$rc" 2
before=$(q "select count(*) from dagrun.dag_run")
expect_eq "nothing ran for bad --conf" "$before" 0
out=$(DATABASE_URL='postgresql://u@127.0.0.1:1/none' dagrun run ci_smoke --conf '{"no_such_param": 1}' 2>&1); rc=$?
expect_eq "unknown --conf key exits 2 before the database is opened" "$rc" 2

# a 10,000-item mapped lane of noop finishes, and every item is recorded.
cat >"$T_WORK/dags/lane.yaml" <<'YAML'
dag_id: lane10k
tasks:
  items: { plugin: emit_list, params: { n: 10000 } }
  first: { plugin: noop, map: items }
  second: { plugin: noop, map: items, after: [first] }
  done: { plugin: noop, after: [second] }
YAML
out=$(dagrun run "$T_WORK/dags/lane.yaml" 2>&1); rc=$?
expect_eq "10,000-item lane run exits 0" "$rc" 0
expect_eq "10,000 items of each lane task recorded" \
    "$(q "select count(*) from dagrun.task_instance where task_id in ('first','second') and state='success'")" 20000

# test --junit: one testcase per task instance, valid counts.
out=$(dagrun test ci_mapped --junit "$T_WORK/report.xml" 2>&1); rc=$?
expect_eq "dagrun test ci_mapped exits 0" "$rc" 0
check "junit file written" test -s "$T_WORK/report.xml"
n_cases=$(grep -c '<testcase ' "$T_WORK/report.xml")
n_ti=$(q "select count(*) from dagrun.task_instance ti join dagrun.dag_run r using (run_id) where r.dag_id='ci_mapped' and r.run_type='test'")
expect_eq "one testcase per task instance" "$n_cases" "$n_ti"

# a failing DAG exits 1 and the JUnit report says so.
cat >"$T_WORK/dags/failing.yaml" <<'YAML'
dag_id: failing
tasks:
  boom: { plugin: fail, params: { mode: fail } }
YAML
out=$(dagrun test "$T_WORK/dags/failing.yaml" --junit "$T_WORK/fail.xml" 2>&1); rc=$?
expect_eq "failing DAG exits 1" "$rc" 1
check "junit records the failure" grep -q '<failure' "$T_WORK/fail.xml"

# a JUnit report that cannot be written: refused before anything runs (exit 2), and one that
# fails at the end of the run makes the run exit 1; never a silent 0.
n_before=$(q "select count(*) from dagrun.dag_run where run_type='test'")
out=$(dagrun test ci_mapped --junit /nonexistent/dir/r.xml 2>&1); rc=$?
expect_eq "--junit into a missing folder exits 2" "$rc" 2
check "--junit error names the path" grep -q -- '--junit /nonexistent/dir/r.xml: folder /nonexistent/dir: No such file' <<<"$out"
expect_eq "nothing ran for an unwritable --junit" "$(q "select count(*) from dagrun.dag_run where run_type='test'")" "$n_before"
mkdir "$T_WORK/late.xml.tmp"    # the report's temporary file cannot be created
out=$(dagrun test ci_mapped --junit "$T_WORK/late.xml" 2>&1); rc=$?
expect_eq "a JUnit report failing after the run exits 1" "$rc" 1
check "the late JUnit error says so" grep -q 'could not write the JUnit report' <<<"$out"

# a file outside dags_dir is not run: resume and the scheduler find a run's DAG by dag_id in
# dags_dir, so such a run could never be resumed. validate and show still read any file.
printf 'dag_id: outside\ntasks:\n  a: { plugin: noop }\n' >"$T_WORK/outside.yaml"
for cmd in run test; do
    out=$(dagrun $cmd "$T_WORK/outside.yaml" 2>&1); rc=$?
    expect_eq "$cmd of a file outside dags_dir exits 2" "$rc" 2
    check "$cmd of a file outside dags_dir says why" grep -q "outside.yaml is not in dags_dir ($T_WORK/dags): a run of it could not be resumed" <<<"$out"
done
expect_eq "no run of a file outside dags_dir" "$(q "select count(*) from dagrun.dag_run where dag_id='outside'")" 0
check "show reads a file outside dags_dir" dagrun show "$T_WORK/outside.yaml"
# the same file by a path through a symlink or with ./ is in dags_dir
ln -s "$T_WORK/dags" "$T_WORK/dags_link"
out=$(dagrun run "$T_WORK/dags_link/ci/../failing.yaml" 2>&1); rc=$?
expect_eq "a dags_dir file by another path runs (and fails as it should)" "$rc" 1

# the same dag_id in two files is refused by every command, naming both files; the scheduler
# fires neither (and still fires the others).
mkdir "$T_WORK/dupdags"
for f in a b; do printf 'dag_id: twin\nschedule: "@hourly"\ntasks:\n  %s: { plugin: noop }\n' "$f" >"$T_WORK/dupdags/twin_$f.yaml"; done
printf 'dag_id: solo\nschedule: "@hourly"\ntasks:\n  a: { plugin: noop }\n' >"$T_WORK/dupdags/solo.yaml"
jq --arg d "$T_WORK/dupdags" '.dags_dir = $d' "$CONFIG" >"$T_WORK/dup.json"
dupd() { "$DR_BUILD/dagrun" -c "$T_WORK/dup.json" "$@"; }
names_both() { grep -q "dag_id .*twin.* defined in" "$1" && grep -q "$T_WORK/dupdags/twin_a.yaml" "$1" &&
    grep -q "$T_WORK/dupdags/twin_b.yaml" "$1"; }
for args in "run twin" "test twin" "show twin" "run $T_WORK/dupdags/twin_b.yaml" "list" "validate"; do
    dupd $args >"$T_WORK/dup.out" 2>&1; rc=$?
    expect_eq "dagrun $args with a dag_id in two files exits 2" "$rc" 2
    check "dagrun $args names both files" names_both "$T_WORK/dup.out"
done
# a stale run whose DAG is in no file of dags_dir (its file removed, or run from a path by
# an older dagrun): the scheduler says it cannot resume it, rather than leave it silently.
q "insert into dagrun.dag (dag_id) values ('gone')" >/dev/null
q "insert into dagrun.dag_run (run_id, dag_id, run_type, logical_date, state, started_at, heartbeat_at)
   values ('gone__manual__1', 'gone', 'manual', now(), 'running', now() - interval '1 hour', now() - interval '1 hour')" >/dev/null
dupd scheduler --once >"$T_WORK/dup_sched.log" 2>&1
check "the scheduler says a stale run of a DAG not in dags_dir is not resumed" \
    grep -q 'gone__manual__1 stopped (its heartbeat is stale) but is not resumed: no DAG .*gone' "$T_WORK/dup_sched.log"
expect_eq "the scheduler fires no run of a dag_id in two files" "$(q "select count(*) from dagrun.dag_run where dag_id='twin'")" 0
expect_eq "the scheduler fires the other DAGs" "$(q "select count(*) from dagrun.dag_run where dag_id='solo'")" 1
check "the scheduler log names both files" names_both "$T_WORK/dup_sched.log"
rm "$T_WORK/dupdags/twin_b.yaml"
check "with one file left, run twin works" dupd run twin

# a database made by an older dagrun (no checkpoint column yet): the error says to run
# initdb, and initdb upgrades it.
q "alter table dagrun.task_instance drop column checkpoint" >/dev/null
out=$(dagrun run ci_mapped 2>&1); rc=$?
expect_eq "run on an old schema exits 1" "$rc" 1
check "the error hints at dagrun initdb" grep -q "hint: run \`dagrun initdb\` to create or upgrade" <<<"$out"
check "initdb upgrades it" dagrun initdb
out=$(dagrun run ci_mapped 2>&1); rc=$?
expect_eq "run after the upgrade exits 0" "$rc" 0

# values that would fail only once the run has started are refused first (exit 2), and the
# run leaves nothing behind: no dagrun.dag_run row, no dagrun.dag row.
runs_before=$(q "select count(*) from dagrun.dag_run")
for c in '{"limit": -1}' '{"candle_interval": "2minute"}' '{"limit": "5"}' '{"symbols": ["INFY"], "max_days": -3}'; do
    out=$(dagrun run kite_historic --conf "$c" 2>&1); rc=$?
    expect_eq "run --conf '$c' exits 2" "$rc" 2
    check "run --conf '$c' names the param" grep -q -- '--conf: param "' <<<"$out"
done
out=$(dagrun run kite_historic --conf '{"limit": -1}' 2>&1)
check "a negative limit is named with its minimum" grep -qF -- '--conf: param "limit" (task "list_instruments"): -1 is below the minimum 0' <<<"$out"
out=$(dagrun run kite_historic --conf '{"limit": "5"}' 2>&1)
check "a string for an int is a type error" grep -qF 'expected an int, got string' <<<"$out"
long=$(printf 'd%.0s' $(seq 1 101))
printf 'dag_id: %s\ntasks:\n  a: { plugin: noop }\n' "$long" >"$T_WORK/dags/long_id.yaml"
out=$(dagrun run "$long" 2>&1); rc=$?
expect_eq "run of a dag_id too long for a run id exits 2" "$rc" 2
out=$(dagrun validate "$T_WORK/dags/long_id.yaml" 2>&1); rc=$?
expect_eq "validate of a dag_id too long exits 2" "$rc" 2
check "it names file:line:col" grep -qF "$T_WORK/dags/long_id.yaml:1:9: bad dag_id" <<<"$out"
rm "$T_WORK/dags/long_id.yaml"
expect_eq "no dagrun.dag row for the long dag_id" "$(q "select count(*) from dagrun.dag where length(dag_id) > 100")" 0
printf 'dag_id: neg\nparams:\n  limit: -1\ntasks:\n  l: { plugin: list_instruments }\n' >"$T_WORK/neg.yaml"
out=$(dagrun validate "$T_WORK/neg.yaml" 2>&1); rc=$?
expect_eq "validate of limit: -1 exits 2" "$rc" 2
check "it names file:line:col and the minimum" grep -qF "$T_WORK/neg.yaml:3:10: param \"limit\" (task \"l\"): -1 is below the minimum 0" <<<"$out"
printf 'dag_id: qi\nparams:\n  limit: "5"\ntasks:\n  l: { plugin: list_instruments }\n' >"$T_WORK/qi.yaml"
out=$(dagrun validate "$T_WORK/qi.yaml" 2>&1); rc=$?
expect_eq "validate of a quoted int exits 2" "$rc" 2
jq '.sources.kite.rate_limit_per_sec = 1e-9' "$CONFIG" >"$T_WORK/rate.json"
out=$("$DR_BUILD/dagrun" -c "$T_WORK/rate.json" run kite_historic 2>&1); rc=$?
expect_eq "rate_limit_per_sec 1e-9 exits 2" "$rc" 2
check "it names the config file and key" grep -qF "$T_WORK/rate.json: sources.kite.rate_limit_per_sec: expected 0 (no limit) or a number from 0.001" <<<"$out"
expect_eq "none of these left a run" "$(q "select count(*) from dagrun.dag_run")" "$runs_before"
finish
