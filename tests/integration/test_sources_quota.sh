#!/usr/bin/env bash
# Windows of a source's limits counted in PostgreSQL ("reset": "utc_day", or "fixed" with per:
# windows aligned to the Unix epoch): a quota smaller than the work parks the run as queued
# with the time the window reopens (no request over it is sent, nothing fails, the items not
# done stay pending); a second process or a restarted scheduler respects the same count; once
# the window reopens the run goes on and completes with exactly the minimum requests.
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
BOOT=2017-01-01 END=2024-06-28
pf="$T_WORK/bsim.port"
"$DR_BUILD/binance_sim" --port 0 --port-file "$pf" --symbols 2 --history-start 2017-07-14 >"$T_WORK/bsim.log" 2>&1 &
T_PIDS+=("$!")
for i in $(seq 1 100); do [ -s "$pf" ] && break; sleep 0.05; done
export BSIM_URL="http://127.0.0.1:$(cat "$pf")"
bstat() { curl -sf "$BSIM_URL/__sim/stats" | jq -r "$1"; }
# write_config LIMIT DAGS_DIR: binance with a weight window and the counted window LIMIT
write_config() {
    cat >"$CONFIG" <<JSON
{
  "dags_dir": "$2",
  "plugin_dir": "\${DAGRUN_PLUGIN_DIR}",
  "log_format": "json",
  "pools": { "binance": { "slots": 1 } },
  "sources": {
    "binance": { "base_url": "\${BSIM_URL}", "ban_status": 418, "retry_delay_ms": 50,
                 "limits": [{ "weight": 6000, "per": "1m" }, $1] }
  }
}
JSON
}
historic() { dagrun run binance_historic --conf "{\"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}"; }
expected() {
    local s
    for s in BTCUSDT ETHUSDT; do "$DR_BUILD/binance_sim" --symbols 2 --history-start 2017-07-14 --dump-klines "$s" 1d "$BOOT" "$END"; done | sort
}
stored() {
    q "select symbol||','||candle_interval||','||(extract(epoch from ts)::bigint*1000)||','||open||','||high||','||low||','||close||','||volume
       from ohlcv" | sort
}
run_id() { q "select run_id from dagrun.dag_run order by queued_at desc limit 1"; }
# The least requests for the work: exchangeInfo, then 3 pages of 1000 days for each of the
# two symbols (2017-07-14 .. 2024-06-28 is 2542 days; the short third page ends each).
MIN_REQUESTS=7

# ---- a day quota: the run parks until the next UTC midnight
write_config '{ "requests": 5, "reset": "utc_day" }' "$DR_TOP/dags"
TOMORROW=$(date -u -d tomorrow +%F)
new_db quota
historic >"$T_WORK/out" 2>&1; rc=$?
expect_eq "the work is more than the day's 5 requests: the run parks (exit 4)" "$rc" 4
RUN=$(run_id)
expect_eq "the run is queued until the next UTC day" \
    "$(q "select state || ' ' || to_char(resume_after at time zone 'UTC', 'YYYY-MM-DD HH24:MI') from dagrun.dag_run where run_id = '$RUN'")" \
    "queued $TOMORROW 00:00"
expect_eq "exactly 5 requests reached the provider" "$(bstat .requests)" 5
expect_eq "the day's count is kept in PostgreSQL" \
    "$(q "select used from dagrun.source_window where source = 'binance' and window_key = 'requests/utc_day'")" 5
check "dagrun run says until when" grep -q "run $RUN is queued until ${TOMORROW}T00:00:00Z" "$T_WORK/out"
dagrun status "$RUN" >"$T_WORK/status" 2>&1
check "status shows queued until the reopening" \
    grep -Eq "^state: +queued until ${TOMORROW}T00:00:00Z$" "$T_WORK/status"
check "and a warning naming the source, the window and the time" \
    grep -q "sources.binance: its 5 requests per UTC day are used up; the window reopens at ${TOMORROW}T00:00:00Z: the run is queued until then" "$T_WORK/status"
expect_eq "nothing failed: the items not done are pending" \
    "$(q "select count(*) filter (where state = 'failed') || ',' || (count(*) filter (where state = 'pending') > 0) from dagrun.task_instance where run_id = '$RUN'")" \
    "0,true"
expect_eq "what came before is committed (BTCUSDT whole, ETHUSDT's first page)" \
    "$(q "select string_agg(symbol || ':' || n, ',' order by symbol) from (select symbol, count(*) n from ohlcv group by 1) x")" \
    "BTCUSDT:$(expected | grep -c '^BTCUSDT,'),ETHUSDT:1000"
dagrun runs >"$T_WORK/runs" 2>&1
check "runs says the run is queued until then" grep -q "queued until ${TOMORROW}T00:00:00Z" "$T_WORK/runs"

dagrun resume "$RUN" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a second process the same day: parks again (exit 4)" "$rc" 4
expect_eq "and sends nothing: the count is shared" "$(bstat .requests)" 5

# the next UTC day: the count of today is yesterday's
q "update dagrun.source_window set period_start = period_start - interval '1 day'" >/dev/null
dagrun resume "$RUN" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "the next day the run goes on and completes (exit 0)" "$rc" 0
expected >"$T_WORK/expected"
stored >"$T_WORK/stored"
check "every stored value equals the simulator's" cmp -s "$T_WORK/stored" "$T_WORK/expected"
expect_eq "the minimum requests in all: the first page of ETHUSDT is not fetched again" \
    "$(bstat .requests)" "$MIN_REQUESTS"
expect_eq "the new day's count holds only the new day's requests" \
    "$(q "select used from dagrun.source_window where period_start = date_trunc('day', now() at time zone 'UTC')")" \
    "$(( $(bstat .requests) - 5 ))"
expect_eq "the run ended success with no reopening time left" \
    "$(q "select state || ',' || (resume_after is null) from dagrun.dag_run where run_id = '$RUN'")" "success,true"

# ---- 3 requests per 10 s, counted in PostgreSQL: parked, resumed by the scheduler
curl -sf -X POST "$BSIM_URL/__sim/reset" >/dev/null 2>&1 || true
mkdir -p "$T_WORK/dags"
# unscheduled: the scheduler resumes its runs and starts none of its own
grep -v '^schedule:' "$DR_TOP/dags/binance_historic.yaml" >"$T_WORK/dags/binance_historic.yaml"
write_config '{ "requests": 3, "per": "10s", "reset": "fixed" }' "$T_WORK/dags"
new_db quota_fixed
base=$(bstat .requests)
# start at the beginning of a 10 s window, so that the checks before it reopens fit in it
sleep "$(python3 -c 'import time; print(10 - time.time() % 10 + 0.05)')"
historic >"$T_WORK/out" 2>&1; rc=$?
expect_eq "3 requests per 10 s, 7 to make: the run parks (exit 4)" "$rc" 4
RUN=$(run_id)
AT=$(q "select to_char(resume_after at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') from dagrun.dag_run where run_id = '$RUN' and state = 'queued'")
check "queued with a reopening time on a multiple of 10 s" \
    test -n "$AT" -a "$(q "select extract(epoch from resume_after)::bigint % 10 from dagrun.dag_run where run_id = '$RUN'")" = 0
expect_eq "the count in PostgreSQL is what the provider saw" \
    "$(q "select sum(used) from dagrun.source_window where window_key = 'requests/fixed_10000ms'")" \
    "$(( $(bstat .requests) - base ))"
dagrun status "$RUN" >"$T_WORK/status" 2>&1
check "status shows queued until the reopening" grep -Eq "^state: +queued until $AT$" "$T_WORK/status"
check "with the warning saying why" \
    grep -q "sources.binance: its 3 requests per 10s (fixed windows) are used up; the window reopens at $AT" "$T_WORK/status"
sent=$(bstat .requests)
dagrun scheduler --once >"$T_WORK/sched0.out" 2>&1; rc=$?
expect_eq "a parked run is no failure of the scheduler (exit 0)" "$rc" 0
if [ "$(q "select resume_after > now() from dagrun.dag_run where run_id = '$RUN'")" = t ]; then
    expect_eq "a scheduler before the reopening leaves it queued and sends nothing" \
        "$(q "select state from dagrun.dag_run where run_id = '$RUN'"),$(bstat .requests)" "queued,$sent"
else
    echo "# note: the window reopened before the check (slow machine): skipped"
fi
# restarted schedulers: each resumes it once its window has reopened, until it completes
for i in $(seq 1 12); do
    [ "$(q "select state from dagrun.dag_run where run_id = '$RUN'")" = success ] && break
    sleep "$(q "select greatest(0, extract(epoch from resume_after - now())) + 0.1 from dagrun.dag_run where run_id = '$RUN'")"
    dagrun scheduler --once >>"$T_WORK/sched.out" 2>&1 || sched_rc=$?
done
expect_eq "each scheduler exits 0, whether the run parked again or completed" "${sched_rc:-0}" 0
expect_eq "after the window reopens the scheduler resumes it and it completes" \
    "$(q "select state || ',' || (resume_after is null) from dagrun.dag_run where run_id = '$RUN'")" "success,true"
check "the scheduler said why it resumed" grep -q "window it waited for reopened" "$T_WORK/sched.out"
stored >"$T_WORK/stored"
check "every stored value equals the simulator's" cmp -s "$T_WORK/stored" "$T_WORK/expected"
expect_eq "exactly the minimum requests were made" "$(( $(bstat .requests) - base ))" "$MIN_REQUESTS"
expect_eq "and counted, no window over 3" \
    "$(q "select sum(used) || ',' || max(used) from dagrun.source_window where window_key = 'requests/fixed_10000ms'")" \
    "$MIN_REQUESTS,3"
finish
