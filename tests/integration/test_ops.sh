#!/usr/bin/env bash
# The operator's commands: kept task logs (dagrun logs), exit codes a cron job can trust
# (scheduler --once before initdb, a closed stdout), --version, tables that fit 80 columns.
source "$(dirname "$0")/lib.sh"
new_db ops
CONFIG=$T_WORK/config.json
SIM_URL=http://127.0.0.1:9 write_config "$CONFIG"
export SIM_URL=http://127.0.0.1:9
# the shipped plugins and the test plugin that logs a credential, in one plugin_dir
mkdir -p "$T_WORK/plugins" "$T_WORK/dags"
cp "$DR_BUILD"/tasks/*.so "$DR_BUILD/tests/plugins/log_secret.so" "$T_WORK/plugins/"
cp -r "$DR_TOP/dags/ci" "$T_WORK/dags/ci"
cat >"$T_WORK/dags/secret.yaml" <<'YAML'
dag_id: secret_logs
schedule: null
tasks:
  items:  { plugin: emit_list, params: { n: 3 } }
  call:   { plugin: log_secret, map: items, params: { fail_index: 1, lines: 2 } }
YAML
cat >"$T_WORK/dags/chatty.yaml" <<'YAML'
dag_id: chatty
schedule: null
tasks:
  items:  { plugin: emit_list, params: { n: 2 } }
  talk:   { plugin: log_secret, map: items, params: { fail_index: -1, lines: 3000 } }
YAML
jq --arg d "$T_WORK/dags" --arg p "$T_WORK/plugins" '.dags_dir = $d | .plugin_dir = $p' \
    "$CONFIG" >"$CONFIG.tmp" && mv "$CONFIG.tmp" "$CONFIG"
export KITE_ACCESS_TOKEN=tok_5ecret_value

# --version
out=$(dagrun --version); rc=$?
expect_eq "--version exits 0" "$rc" 0
check "--version names dagrun and a version" grep -Eq '^dagrun [0-9]+\.[0-9]+' <<<"$out"

# 14.2: a failed item's log lines are kept and printed after the process exited, redacted.
out=$(dagrun run secret_logs 2>"$T_WORK/secret.err"); rc=$?
expect_eq "secret_logs ends partial (one item fails)" "$rc" 3
run_id=$(q "select run_id from dagrun.dag_run where dag_id='secret_logs'")
check "the token is redacted on stderr too" bash -c "! grep -q tok_5ecret_value '$T_WORK/secret.err'"
logs=$(dagrun logs "$run_id"); rc=$?
expect_eq "dagrun logs exits 0" "$rc" 0
item1=$(q "select map_key from dagrun.task_instance where run_id='$run_id' and task_id='call' and map_index=1")
check "logs print the failed item's plugin lines" grep -q "call\[$item1\]: line 1: calling with token \*\*\*" <<<"$logs"
check "logs never hold the token" bash -c "! grep -q tok_5ecret_value <<<'$logs'"
check "the token is not in dagrun.task_log" \
    test "$(q "select count(*) from dagrun.task_log where line like '%tok_5ecret_value%'")" = 0
one=$(dagrun logs "$run_id" call 1)
check "logs RUN TASK MAP_INDEX prints that item only" \
    bash -c "grep -q 'call\[$item1\]' <<<'$one' && ! grep -qv 'call\[$item1\]' <<<'$one'"
check "logs RUN TASK KEY prints the same" test "$(dagrun logs "$run_id" call "$item1")" = "$one"
out=$(dagrun logs no_such_run 2>&1); rc=$?
expect_eq "logs of an unknown run exits 2" "$rc" 2
# the cap: 3000 lines of ~45 bytes per item keep 64 KiB and count the rest
dagrun run chatty >/dev/null 2>&1
cid=$(q "select run_id from dagrun.dag_run where dag_id='chatty'")
bytes=$(q "select max(s) from (select sum(length(line) + 1) s from dagrun.task_log where run_id='$cid' and line not like '%lines dropped%' group by map_key) x")
expect_le "an item's kept log is at most 64 KiB" "$bytes" 65536
check "the rest is counted as dropped lines" \
    grep -Eq '\[[^]]+\]: [0-9]+ lines dropped' <<<"$(dagrun logs "$cid" talk)"
out=$(dagrun logs "$cid" --follow 2>&1); rc=$?
expect_eq "logs --follow of an ended run ends" "$rc" 0

# 14.4: the progress display on a terminal (a pseudo-terminal of 80x24): log lines above
# the bar, never on its row; counts that add up; wall time; the next command to type.
cat >"$T_WORK/dags/busy.yaml" <<'YAML'
dag_id: busy
schedule: null
max_active_tasks: 2
tasks:
  items:  { plugin: emit_list, params: { n: 400 } }
  nap:    { plugin: sleep, map: items, params: { ms: 2 } }
  call:   { plugin: log_secret, map: items, after: [nap], params: { fail_index: 7, lines: 1 } }
YAML
PTY="python3 $DR_TOP/tests/integration/pty_run.py"
CHK="python3 $DR_TOP/tests/integration/pty_check.py"
$PTY "$T_WORK/tty.out" "$DR_BUILD/dagrun" -c "$CONFIG" --log-format text run busy; rc=$?
expect_eq "busy ends partial on a terminal" "$rc" 3
check "no log line shares a row with the bar" $CHK "$T_WORK/tty.out" glued
check "the bar's counts add up" $CHK "$T_WORK/tty.out" bars
check "the summary table's counts add up" $CHK "$T_WORK/tty.out" table
check "the summary says the wall time" grep -q "partial in [0-9.]*s (wall time)" "$T_WORK/tty.out"
check "a partial run ends with the resume command" grep -q "^next: dagrun resume busy" "$T_WORK/tty.out"
check "no log line holds the token on the terminal" bash -c "! grep -q tok_5ecret_value '$T_WORK/tty.out'"

# a cancelled run (Ctrl-C) on a terminal: cancelled, not failed, and the resume command
cat >"$T_WORK/dags/slow.yaml" <<'YAML'
dag_id: slow
schedule: null
max_active_tasks: 2
tasks:
  items:  { plugin: emit_list, params: { n: 40 } }
  nap:    { plugin: sleep, map: items, params: { ms: 300 } }
YAML
PTY_SIGINT_AFTER=1.5 $PTY "$T_WORK/cancel.out" "$DR_BUILD/dagrun" -c "$CONFIG" --log-format text run slow; rc=$?
expect_eq "a cancelled run exits 1" "$rc" 1
check "the summary says cancelled" grep -q "slow__.*: cancelled in" "$T_WORK/cancel.out"
check "the cancelled run's counts add up" $CHK "$T_WORK/cancel.out" table
check "no cancelled item is listed as failed" bash -c "! grep -q '^  failed (' '$T_WORK/cancel.out'"
check "a cancelled run ends with the resume command" grep -q "^next: dagrun resume slow__" "$T_WORK/cancel.out"

# 14.5: tables that fit 80 columns; filters; the paused column of list.
maxw() { awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }'; }
out=$(dagrun runs)
expect_le "runs fits 80 columns" "$(maxw <<<"$out")" 80
check "runs shows the short id" grep -q "^${run_id##*__} " <<<"$out"
check "runs --wide shows the full id" grep -q "^$run_id " <<<"$(dagrun runs --wide)"
check "runs --json has the full id" grep -q "\"$run_id\"" <<<"$(dagrun runs --json)"
out=$(dagrun runs --state partial)
check "runs --state partial lists partial runs" grep -q " partial " <<<"$out"
check "runs --state partial lists nothing else" bash -c "! grep -Eq ' (success|failed|running) ' <<<'$out'"
out=$(dagrun runs --state bogus 2>&1); rc=$?
expect_eq "runs --state with an unknown state exits 2" "$rc" 2
out=$(dagrun status "$run_id" --state failed)
expect_eq "status --state failed lists the one failed item" \
    "$(grep -c ' failed ' <<<"$out") $(grep -Ec ' success ' <<<"$out")" "1 0"
check "status --state failed --json keeps the failed only" test \
    "$(dagrun status "$run_id" --state failed --json | jq '.tasks | length')" = 1
# 14.5: every command taking a RUN_ID takes the short form `runs` prints (a unique end or
# start of the id); an ambiguous one is refused naming the candidates, an unknown one too.
short=${run_id##*__}
out=$(dagrun status "$short"); rc=$?
expect_eq "status SHORT_ID exits 0" "$rc" 0
check "status SHORT_ID shows the run" grep -q "^run: *$run_id\$" <<<"$out"
check "status by the start of the id shows the run" \
    grep -q "^run: *$run_id\$" <<<"$(dagrun status "${run_id%__*}")"
check "logs SHORT_ID prints what logs RUN_ID prints" \
    test "$(dagrun logs "$short" call 1)" = "$(dagrun logs "$run_id" call 1)"
out=$(dagrun cancel "$short" 2>&1); rc=$?
expect_eq "cancel SHORT_ID of an ended run exits 2" "$rc" 2
check "cancel SHORT_ID names the full id" grep -q "cancel run $run_id: the run has ended" <<<"$out"
q "insert into dagrun.dag (dag_id) values ('twin') on conflict do nothing" >/dev/null
q "insert into dagrun.dag_run (run_id, dag_id, run_type, logical_date, state) values
   ('twin__manual__2026-01-01T00:00:00Z__aa1b2c', 'twin', 'manual', now(), 'failed'),
   ('twin__manual__2026-01-02T00:00:00Z__ff1b2c', 'twin', 'manual', now(), 'failed')" >/dev/null
for cmd in status resume cancel logs; do
    out=$(dagrun $cmd 1b2c 2>&1); rc=$?
    expect_eq "$cmd with an ambiguous short id exits 2" "$rc" 2
    check "$cmd names both candidates" bash -c 'grep -q "run 1b2c: ambiguous, it matches" <<<"$1" &&
        grep -q "twin__manual__2026-01-01T00:00:00Z__aa1b2c" <<<"$1" &&
        grep -q "twin__manual__2026-01-02T00:00:00Z__ff1b2c" <<<"$1"' _ "$out"
    out=$(dagrun $cmd zz9zz9 2>&1); rc=$?
    expect_eq "$cmd with an unknown id exits 2" "$rc" 2
    check "$cmd says no such run" grep -q "run zz9zz9: no such run" <<<"$out"
done
check "a unique short id among look-alikes resolves" \
    grep -q "^run: *twin__manual__2026-01-01T00:00:00Z__aa1b2c\$" <<<"$(dagrun status aa1b2c)"
expect_eq "the ambiguous commands changed nothing" \
    "$(q "select string_agg(state || cancel_requested, ',') from dagrun.dag_run where dag_id = 'twin'")" \
    "failedfalse,failedfalse"
q "delete from dagrun.dag_run where dag_id = 'twin'" >/dev/null
cat >"$T_WORK/dags/listed.yaml" <<'YAML'
dag_id: every_minute_list
schedule: "* * * * *"
start_date: 2026-01-01
tasks:
  a: { plugin: noop }
YAML
dagrun pause every_minute_list >/dev/null
out=$(dagrun list)
expect_le "list fits 80 columns" "$(maxw <<<"$out")" 80
check "list has a PAUSED column" grep -q PAUSED <<<"$out"
check "a paused DAG shows no next run" grep -Eq '^every_minute_list .*- \(paused\) +yes' <<<"$out"
dagrun unpause every_minute_list >/dev/null
check "an unpaused DAG shows its next run" \
    grep -Eq '^every_minute_list .* [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{5} +no' <<<"$(dagrun list)"
rm "$T_WORK/dags/listed.yaml"

# 14.7: a closed stdout never leaves a run behind; the run ends and is recorded.
dagrun test ci_mapped 2>/dev/null | head -1 >/dev/null
sleep 0.5
st=$(q "select state from dagrun.dag_run where dag_id='ci_mapped' order by queued_at desc limit 1")
expect_eq "a run whose stdout closed ends success" "$st" success

# 14.7: scheduler --once before initdb exits non-zero (every DAG errored).
new_db ops_empty
PGOPTIONS="-c client_min_messages=warning" q "drop schema dagrun cascade" >/dev/null
cat >"$T_WORK/dags/cron.yaml" <<'YAML'
dag_id: every_minute
schedule: "* * * * *"
start_date: 2026-01-01
catchup: false
tasks:
  a: { plugin: noop }
YAML
out=$(dagrun scheduler --once 2>&1); rc=$?
check "scheduler --once before initdb exits non-zero (got $rc)" test "$rc" -ne 0
dagrun initdb >/dev/null 2>&1
out=$(dagrun scheduler --once 2>&1); rc=$?
expect_eq "scheduler --once after initdb exits 0" "$rc" 0

finish
