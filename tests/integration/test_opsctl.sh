#!/usr/bin/env bash
# The operator's controls: the on_failure hook (a command with no shell, a webhook), dagrun
# clear (one task or item of a finished run, and what depends on it) and dagrun db clean.
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
DAGS=$T_WORK/dags
mkdir -p "$DAGS"
start_sim --instruments 5 --rate 0
write_config "$CONFIG" 0
jq --arg d "$DAGS" '.dags_dir = $d' "$CONFIG" >"$T_WORK/c.json" && mv "$T_WORK/c.json" "$CONFIG"
run_of() { q "select run_id from dagrun.dag_run where dag_id='$1' order by queued_at desc limit 1"; }

# ---- on_failure command: argv straight to execve (posix_spawnp), the run's facts in DAGRUN_*
# variables; an error full of shell metacharacters reaches the hook literally and runs nothing.
cat >"$T_WORK/hook.sh" <<'SH'
#!/bin/sh
env | grep '^DAGRUN_' | sort >"$HOOK_OUT.env"
printf '%s\n' "$@" >"$HOOK_OUT.args"
SH
chmod +x "$T_WORK/hook.sh"
export HOOK_OUT=$T_WORK/hook
cat >"$DAGS/hooked.yaml" <<YAML
dag_id: hooked
schedule: null
on_failure:
  command: ["$T_WORK/hook.sh", "two words", "\$(touch $T_WORK/PWNED)", ";", "|", "*"]
  timeout: 5s
tasks:
  boom: { plugin: fail, params: { mode: fail } }
  after_boom: { plugin: noop, after: [boom] }
YAML
new_db hook
check "a DAG with on_failure validates" dagrun validate "$DAGS/hooked.yaml"
EVIL='x"; touch '"$T_WORK"'/PWNED2; echo $(id) `id` $HOME '"'"'q'"'"' | > & * \n'
dagrun run hooked --conf "$(jq -nc --arg m "$EVIL" '{mode: $m}')" >"$T_WORK/out" 2>&1; rc=$?
run=$(run_of hooked)
expect_eq "the failed run exits 1 and stays failed" "$rc:$(q "select state from dagrun.dag_run where run_id='$run'")" 1:failed
check "the hook ran" test -s "$HOOK_OUT.env"
expect_eq "DAGRUN_RUN_ID" "$(grep '^DAGRUN_RUN_ID=' "$HOOK_OUT.env" | cut -d= -f2-)" "$run"
expect_eq "DAGRUN_DAG_ID, _STATE, _RUN_TYPE" \
    "$(grep -E '^DAGRUN_(DAG_ID|STATE|RUN_TYPE)=' "$HOOK_OUT.env" | tr '\n' ' ')" \
    "DAGRUN_DAG_ID=hooked DAGRUN_RUN_TYPE=manual DAGRUN_STATE=failed "
expect_eq "DAGRUN_ERROR is the stored error, metacharacters and all" \
    "$(grep -a '^DAGRUN_ERROR=' "$HOOK_OUT.env" | cut -d= -f2-)" \
    "$(q "select error from dagrun.dag_run where run_id='$run'")"
check "the error holds the shell text literally" grep -aqF "touch $T_WORK/PWNED2; echo \$(id) \`id\` \$HOME" "$HOOK_OUT.env"
expect_eq "the arguments arrive as written" "$(cat "$HOOK_OUT.args" | tr '\n' '|')" \
    "two words|\$(touch $T_WORK/PWNED)|;|||*|"
check "no shell ran anything" test ! -e "$T_WORK/PWNED" -a ! -e "$T_WORK/PWNED2"
check "the hook is logged" grep -q "on_failure command .*: done" "$T_WORK/out"

# A successful run fires nothing; a hook that fails or hangs is logged, bounded by its
# timeout, and changes nothing.
rm -f "$HOOK_OUT.env"
dagrun run hooked --conf '{"times": 0}' >"$T_WORK/out" 2>&1; rc=$?
check "a successful run fires no hook" test "$rc" = 0 -a ! -e "$HOOK_OUT.env"
cat >"$T_WORK/hang.sh" <<'SH'
#!/bin/sh
sleep 60 &
echo $! >"$HOOK_OUT.child"
sleep 60
SH
chmod +x "$T_WORK/hang.sh"
sed -e "s#command: .*#command: [\"$T_WORK/hang.sh\"]#" -e 's/timeout: 5s/timeout: 1s/' "$DAGS/hooked.yaml" >"$T_WORK/h.yaml" && mv "$T_WORK/h.yaml" "$DAGS/hooked.yaml"
t0=$(date +%s)
dagrun run hooked >"$T_WORK/out" 2>&1; rc=$?
secs=$(( $(date +%s) - t0 ))
run=$(run_of hooked)
expect_eq "a hanging hook: the run still exits 1, failed" "$rc:$(q "select state from dagrun.dag_run where run_id='$run'")" 1:failed
check "the hang is logged as killed" grep -q "on_failure command .*hang.sh: no exit after 1s: killed" "$T_WORK/out"
expect_le "and bounded by the timeout (1 s, with slack for a loaded machine)" "$secs" 30
sleep 0.2
child_state=$(ps -o stat= -p "$(cat "$HOOK_OUT.child")" | cut -c1)
check "its process group was killed (the child it started too: gone or a zombie)" test "${child_state:-gone}" != S -a "${child_state:-gone}" != R
sed -e "s#command: .*#command: [\"$T_WORK/missing-hook\"]#" "$DAGS/hooked.yaml" >"$T_WORK/h.yaml" && mv "$T_WORK/h.yaml" "$DAGS/hooked.yaml"
dagrun run hooked >"$T_WORK/out" 2>&1; rc=$?
check "a missing hook command is logged; exit 1 as before" test "$rc" = 1
check "naming it" grep -q "missing-hook: No such file" "$T_WORK/out"
# ---- on_failure webhook: the same fields POSTed as JSON; ${VAR} in the URL is read from the
# environment when it fires and the URL is never logged (it may hold a token)
export HOOK_TOKEN=hooksecret123
cat >"$DAGS/hooked.yaml" <<'YAML'
dag_id: hooked
schedule: null
on_failure:
  webhook: "${SIM_URL}/__sim/hook?token=${HOOK_TOKEN}"
tasks:
  boom: { plugin: fail, params: { mode: fail } }
YAML
dagrun run hooked --conf "$(jq -nc --arg m "$EVIL" '{mode: $m}')" >"$T_WORK/out" 2>&1; rc=$?
run=$(run_of hooked)
expect_eq "webhook: the run exits 1" "$rc" 1
[ "$rc" = 1 ] || cat "$T_WORK/out"
hooks=$(curl -sf "$SIM_URL/__sim/hooks")
expect_eq "one POST, as JSON" "$(jq -r 'length, .[0].content_type' <<<"$hooks" | tr '\n' ' ')" "1 application/json "
expect_eq "with the run's fields" "$(jq -r '.[0].body | [.run_id, .dag_id, .run_type, .state] | join(" ")' <<<"$hooks")" \
    "$run hooked manual failed"
expect_eq "and its error, literally" "$(jq -r '.[0].body.error' <<<"$hooks")" "$(q "select error from dagrun.dag_run where run_id='$run'")"
check "the webhook's answer is logged" grep -q "on_failure webhook: HTTP 200" "$T_WORK/out"
check "the URL's token is never logged" bash -c "! grep -q hooksecret123 '$T_WORK/out'"
sed -i 's#webhook: .*#webhook: "http://127.0.0.1:1/hook"#' "$DAGS/hooked.yaml"
dagrun run hooked >"$T_WORK/out" 2>&1; rc=$?
run=$(run_of hooked)
expect_eq "an unreachable webhook: the run still exits 1, failed" "$rc:$(q "select state from dagrun.dag_run where run_id='$run'")" 1:failed
check "the webhook's failure is logged" grep -q "on_failure webhook: Couldn't connect" "$T_WORK/out"

for bad in 'on_failure: {command: "notify --all"}' 'on_failure: {command: []}' \
           'on_failure: {webhook: "ftp://x"}' 'on_failure: {}' 'on_failure: {command: [a], shell: true}'; do
    printf 'dag_id: badhook\nschedule: null\n%s\ntasks:\n  a: { plugin: noop }\n' "$bad" >"$T_WORK/bad.yaml"
    dagrun validate "$T_WORK/bad.yaml" >"$T_WORK/out" 2>&1; rc=$?
    check "refused by validate: $bad" test "$rc" = 2
    grep -q "on_failure" "$T_WORK/out" || not_ok "the message names on_failure: $(cat "$T_WORK/out")"
done
# ---- dagrun clear: one item of a lane (in every task of the lane) and what follows it
cat >"$DAGS/clearme.yaml" <<'YAML'
dag_id: clearme
schedule: null
tasks:
  items: { plugin: emit_list, params: { n: 5 } }
  step1: { plugin: noop, map: items }
  step2: { plugin: noop, map: items, after: [step1] }
  final: { plugin: noop, after: [step2] }
YAML
new_db clear
check "clear --help" eval 'dagrun clear --help | grep -q "usage: dagrun clear"'
dagrun run clearme >/dev/null 2>&1
run=$(run_of clearme)
ends() { q "select string_agg(task_id || coalesce('[' || nullif(map_index, -1) || ']', '') || '=' || extract(epoch from ended_at), ' ' order by task_id, map_index) from dagrun.task_instance where run_id='$run'"; }
before=$(ends)
dagrun clear "$run" step2 --map-index 3 >"$T_WORK/out" 2>&1; rc=$?
expect_eq "clear of one item exits 0, run success" "$rc:$(q "select state from dagrun.dag_run where run_id='$run'")" 0:success
check "it names what it cleared" grep -q "cleared 3 task instances (final, step1\[3\], step2\[3\])" "$T_WORK/out"
after=$(ends)
changed=$(diff <(tr ' ' '\n' <<<"$before") <(tr ' ' '\n' <<<"$after") | grep '^>' | cut -d= -f1 | tr -d '> ' | sort | tr '\n' ' ')
expect_eq "only the item in its lane and the task after the lane ran again" "$changed" "final step1[3] step2[3] "
expect_eq "every instance is success again" "$(q "select count(*) || ' ' || string_agg(distinct state, ',') from dagrun.task_instance where run_id='$run'")" "12 success"
dagrun clear "$run" items >"$T_WORK/out" 2>&1; rc=$?
expect_eq "clear of the map source clears everything after it" \
    "$rc:$(grep -o 'cleared [0-9]* task instances' "$T_WORK/out")" "0:cleared 12 task instances"
dagrun clear "$run" step2 --failed >"$T_WORK/out" 2>&1; rc=$?
check "--failed with no failed instance: nothing to clear, exit 0" test "$rc" = 0
check "which is said" grep -q "nothing to clear" "$T_WORK/out"
dagrun clear "$run" final --map-index 0 >"$T_WORK/out" 2>&1; rc=$?
expect_eq "--map-index of an unmapped task: exit 2" "$rc" 2
dagrun clear "$run" step2 --map-index 9 >"$T_WORK/out" 2>&1; rc=$?
expect_eq "--map-index of no item: exit 2" "$rc" 2
dagrun clear "$run" nosuch >"$T_WORK/out" 2>&1; rc=$?
expect_eq "an unknown task: exit 2" "$rc" 2
dagrun clear nosuch__run step2 >"$T_WORK/out" 2>&1; rc=$?
expect_eq "an unknown run: exit 2" "$rc" 2
q "update dagrun.dag_run set state = 'running' where run_id = '$run'" >/dev/null
dagrun clear "$run" step2 >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a running run is refused: exit 2, nothing changed" \
    "$rc:$(q "select count(*) from dagrun.task_instance where run_id='$run'")" 2:12
check "with the cancel hint" grep -q "dagrun cancel" "$T_WORK/out"
q "update dagrun.dag_run set state = 'success' where run_id = '$run'" >/dev/null

# The market-data pipeline: failed items cleared with --failed run again from their start
# (their checkpoints dropped: every chunk fetched again), unlike resume; one item cleared by
# --map-index fetches that instrument alone.
BOOT=2016-01-01 END=2024-06-28
cp "$DR_TOP/dags/kite_historic.yaml" "$DR_TOP/dags/kite_instruments.yaml" "$DAGS/"
new_db clear_kite
dagrun run kite_instruments >/dev/null 2>&1
curl -sf "$SIM_URL/__sim/config?reject_from=2022-01-01" >/dev/null
dagrun run kite_historic --conf "{\"limit\": 5, \"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}" >/dev/null 2>&1; rc=$?
run=$(run_of kite_historic)
expect_eq "every item failing at its second chunk: run failed" "$rc:$(q "select state from dagrun.dag_run where run_id='$run'")" 1:failed
curl -sf "$SIM_URL/__sim/config?reject_from=" >/dev/null
sim_reset
dagrun clear "$run" fetch --failed >"$T_WORK/out" 2>&1; rc=$?
expect_eq "clear --failed exits 0 and the run succeeds" "$rc:$(q "select state from dagrun.dag_run where run_id='$run'")" 0:success
check "it cleared the 5 failed items in fetch and upsert" grep -q "cleared 10 task instances" "$T_WORK/out"
expect_eq "each cleared item ran from its start: 2 chunks per instrument" "$(sim_stat '.historical_requests')" 10
expected_rows "$BOOT" "$END" | grep -E "^($(q "select string_agg(instrument_token::text, '|') from kite_ohlcv_historic"))," >"$T_WORK/expected"
stored_rows >"$T_WORK/stored"
expect_eq "the table is complete" \
    "$(md5sum <"$T_WORK/stored" | cut -c1-32)" "$(md5sum <"$T_WORK/expected" | cut -c1-32)"
sim_reset
dagrun clear "$run" upsert --map-index 2 >"$T_WORK/out" 2>&1; rc=$?
expect_eq "clear of one item: exit 0, success" "$rc:$(q "select state from dagrun.dag_run where run_id='$run'")" 0:success
expect_eq "only that instrument is fetched again" "$(sim_stat '.historical_requests'):$(sim_stat '.requests_by_token | length')" 2:1
stored_rows >"$T_WORK/stored"
expect_eq "the table is unchanged" \
    "$(md5sum <"$T_WORK/stored" | cut -c1-32)" "$(md5sum <"$T_WORK/expected" | cut -c1-32)"

# ---- dagrun db clean: retention of ended runs; what resume may need stays unless --all
cat >"$DAGS/failer.yaml" <<'YAML'
dag_id: failer
schedule: null
tasks:
  items: { plugin: emit_list, params: { n: 3 } }
  boom: { plugin: fail, map: items, params: { mode: fail } }
YAML
new_db clean
check "db clean --help" eval 'dagrun db clean --help | grep -q "usage: dagrun db clean"'
for i in 1 2 3; do dagrun run clearme >/dev/null 2>&1; done
dagrun run failer >/dev/null 2>&1
dagrun run failer >/dev/null 2>&1
old_ok=$(q "select string_agg(run_id, ' ' order by run_id) from (select run_id from dagrun.dag_run where dag_id='clearme' order by queued_at limit 2) x")
old_failed=$(q "select run_id from dagrun.dag_run where dag_id='failer' order by queued_at limit 1")
for r in $old_ok $old_failed; do
    q "update dagrun.dag_run set ended_at = now() - interval '100 days' where run_id = '$r'" >/dev/null
done
# A run left running 100 days ago (its process died): never deleted.
q "insert into dagrun.dag_run (run_id, dag_id, run_type, logical_date, state, queued_at, started_at) values ('clearme__manual__stale', 'clearme', 'manual', now() - interval '100 days', 'running', now() - interval '100 days', now() - interval '100 days')" >/dev/null
count() { q "select count(*) || '/' || (select count(*) from dagrun.task_instance) from dagrun.dag_run"; }
before=$(count)
dagrun db clean --older-than 90d --dry-run >"$T_WORK/out" 2>&1; rc=$?
expect_eq "--dry-run exits 0 and deletes nothing" "$rc:$(count)" "0:$before"
expect_eq "it lists the 2 old successful runs" "$(grep -c '^would delete .*(clearme, success, ' "$T_WORK/out")" 2
dagrun db clean --older-than 90d >"$T_WORK/out" 2>&1; rc=$?
expect_eq "clean exits 0" "$rc" 0
expect_eq "the 2 old successful runs and their 11 task instances each are gone" \
    "$(q "select count(*) from dagrun.dag_run where run_id in ($(printf "'%s'," $old_ok | sed 's/,$//'))"):$(q "select count(*) from dagrun.task_instance where run_id in ($(printf "'%s'," $old_ok | sed 's/,$//'))")" 0:0
check "each deletion is printed" test "$(grep -c '^deleted clearme__manual__.*: 12 task instances$' "$T_WORK/out")" = 2
check "with the total" grep -q "^deleted 2 runs and 24 task instances that ended over 90d ago" "$T_WORK/out"
expect_eq "kept: the recent run, both failed runs (resume may need them), the running one" \
    "$(q "select string_agg(dag_id || ':' || state, ' ' order by dag_id, state) from dagrun.dag_run")" \
    "clearme:running clearme:success failer:failed failer:failed"
dagrun resume "$old_failed" >/dev/null 2>&1
expect_eq "the old failed run can still be resumed (its task instances kept)" \
    "$(q "select count(*) from dagrun.task_instance where run_id = '$old_failed'")" 4
q "update dagrun.dag_run set ended_at = now() - interval '100 days' where run_id = '$old_failed'" >/dev/null
# A run a process holds (its lock taken, as a resume starting would) is left alone.
psql -qAtX "$DATABASE_URL" -c "select pg_advisory_lock(1684107122, hashtext('$old_failed'))" -c "select pg_sleep(20)" >/dev/null 2>&1 &
holder=$!
for i in $(seq 1 100); do
    [ "$(q "select count(*) from pg_locks where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())")" -gt 0 ] && break; sleep 0.05
done
dagrun db clean --older-than 90d --all >"$T_WORK/out" 2>&1; rc=$?
expect_eq "--all while the failed run is held: it stays" "$rc:$(q "select count(*) from dagrun.dag_run where run_id = '$old_failed'")" 0:1
q "select pg_terminate_backend(pid) from pg_locks where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())" >/dev/null
wait $holder 2>/dev/null
dagrun db clean --older-than 90d --all --dag clearme >"$T_WORK/out" 2>&1; rc=$?
expect_eq "--dag: only that DAG's runs (none old and ended there)" "$rc:$(q "select count(*) from dagrun.dag_run where run_id = '$old_failed'")" 0:1
dagrun db clean --older-than 90d --all --json >"$T_WORK/out" 2>&1; rc=$?
expect_eq "--all deletes the old failed run; --json lists it" \
    "$rc:$(jq -r '.[].run_id' "$T_WORK/out"):$(q "select count(*) from dagrun.task_instance where run_id = '$old_failed'")" "0:$old_failed:0"
expect_eq "the running run is never deleted" "$(q "select state from dagrun.dag_run where run_id = 'clearme__manual__stale'")" running
dagrun db clean --older-than 3y >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a bad age: exit 2" "$rc" 2
dagrun db clean >"$T_WORK/out" 2>&1; rc=$?
expect_eq "no age: exit 2" "$rc" 2

finish
