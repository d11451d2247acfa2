#!/usr/bin/env bash
# Calendar windows of a source's limits ("reset": "utc_day"), counted in PostgreSQL: a day
# quota smaller than the work stops the items that would go over it with no request sent, a
# second process respects the same count, and the next UTC day the work goes on.
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
BOOT=2017-01-01 END=2024-06-28
pf="$T_WORK/bsim.port"
"$DR_BUILD/binance_sim" --port 0 --port-file "$pf" --symbols 2 --history-start 2017-07-14 >"$T_WORK/bsim.log" 2>&1 &
T_PIDS+=("$!")
for i in $(seq 1 100); do [ -s "$pf" ] && break; sleep 0.05; done
export BSIM_URL="http://127.0.0.1:$(cat "$pf")"
bstat() { curl -sf "$BSIM_URL/__sim/stats" | jq -r "$1"; }
cat >"$CONFIG" <<JSON
{
  "dags_dir": "$DR_TOP/dags",
  "plugin_dir": "\${DAGRUN_PLUGIN_DIR}",
  "log_format": "json",
  "pools": { "binance": { "slots": 1 } },
  "sources": {
    "binance": { "base_url": "\${BSIM_URL}", "ban_status": 418, "retry_delay_ms": 50,
                 "limits": [{ "weight": 6000, "per": "1m" }, { "requests": 5, "reset": "utc_day" }] }
  }
}
JSON
historic() { dagrun run binance_historic --conf "{\"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}"; }
expected() {
    local s
    for s in BTCUSDT ETHUSDT; do "$DR_BUILD/binance_sim" --symbols 2 --history-start 2017-07-14 --dump-klines "$s" 1d "$BOOT" "$END"; done | sort
}
stored() {
    q "select symbol||','||candle_interval||','||(extract(epoch from ts)::bigint*1000)||','||open||','||high||','||low||','||close||','||volume
       from ohlcv" | sort
}
TOMORROW=$(date -u -d tomorrow +%F)

new_db quota
historic >"$T_WORK/out" 2>&1; rc=$?
expect_eq "the work is more than the day's 5 requests: partial (exit 3)" "$rc" 3
expect_eq "exactly 5 requests reached the provider" "$(bstat .requests)" 5
expect_eq "the day's count is kept in PostgreSQL" \
    "$(q "select used from dagrun.source_window where source = 'binance' and window_key = 'requests/utc_day'")" 5
check "the item over the quota says when the window reopens, nothing sent" \
    grep -q "not sent: sources.binance: its 5 requests per UTC day are used up; the window reopens at ${TOMORROW}T00:00:00Z" "$T_WORK/out"
expect_eq "what came before is committed (BTCUSDT whole, ETHUSDT's first page)" \
    "$(q "select string_agg(symbol || ':' || n, ',' order by symbol) from (select symbol, count(*) n from ohlcv group by 1) x")" \
    "BTCUSDT:$(expected | grep -c '^BTCUSDT,'),ETHUSDT:1000"

historic >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a second process the same day: the item fails again (exit 1)" "$rc" 1
expect_eq "and sends nothing: the count is shared" "$(bstat .requests)" 5

# the next UTC day: the count of today is yesterday's
q "update dagrun.source_window set period_start = period_start - interval '1 day'" >/dev/null
historic >"$T_WORK/out" 2>&1; rc=$?
expect_eq "the next day the run goes on and completes (exit 0)" "$rc" 0
expected >"$T_WORK/expected"
stored >"$T_WORK/stored"
check "every stored value equals the simulator's" cmp -s "$T_WORK/stored" "$T_WORK/expected"
expect_eq "the new day's count holds only the new day's requests" \
    "$(q "select used from dagrun.source_window where period_start = date_trunc('day', now() at time zone 'UTC')")" \
    "$(( $(bstat .requests) - 5 ))"
finish
