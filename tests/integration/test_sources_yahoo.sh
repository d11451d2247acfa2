#!/usr/bin/env bash
# yahoo_historic against the Yahoo chart simulator on a real PostgreSQL: exact values (the
# numbers' own text), null entries as missing candles, chart.error messages, firstTradeDate,
# Yahoo's 8-day chunks of 1m candles, minimal requests, incremental runs, bad answers.
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
BOOT=2020-01-01 END=2024-06-28

# start_yahoo ARGS...: the simulator on a free loopback port; sets YSIM_URL and YSIM_ARGS.
start_yahoo() {
    local pf="$T_WORK/ysim.port.$RANDOM"
    YSIM_ARGS=("$@")
    "$DR_BUILD/yahoo_sim" --port 0 --port-file "$pf" "${YSIM_ARGS[@]}" >>"$T_WORK/ysim.log" 2>&1 &
    YSIM_PID=$!
    T_PIDS+=("$YSIM_PID")
    local i
    for i in $(seq 1 100); do [ -s "$pf" ] && break; sleep 0.05; done
    YSIM_URL="http://127.0.0.1:$(cat "$pf")"
    export YSIM_URL
}
stop_yahoo() { kill "$YSIM_PID" 2>/dev/null; wait "$YSIM_PID" 2>/dev/null; }
ystat() { curl -sf "$YSIM_URL/__sim/stats" | jq -r "$1"; }
yreset() { curl -sf "$YSIM_URL/__sim/reset" >/dev/null; }

# write_yconfig FILE WORKERS LIMITS_JSON
write_yconfig() {
    cat >"$1" <<JSON
{
  "dags_dir": "$DR_TOP/dags",
  "plugin_dir": "\${DAGRUN_PLUGIN_DIR}",
  "max_active_tasks": $2,
  "log_format": "json",
  "heartbeat_sec": 1,
  "heartbeat_timeout_sec": 5,
  "sources": {
    "yahoo": {
      "base_url": "\${YSIM_URL}",
      "limits": $3,
      "timeout_ms": 5000,
      "connect_timeout_ms": 2000,
      "max_retries": 3,
      "retry_delay_ms": 50,
      "max_retry_delay_ms": 2000
    }
  }
}
JSON
}
LIMITS='[{"requests": 5, "per": "1s"}, {"requests": 2000, "per": "1h"}]'

stored() {
    q "select symbol||','||candle_interval||','||extract(epoch from ts)::bigint||','||open||','||high||','||low||','||close||','||volume
       from ohlcv where source = 'yahoo'" | sort
}
expected() {   # expected FROM TO INTERVAL SYMBOL...
    local from=$1 to=$2 iv=$3 s; shift 3
    for s in "$@"; do "$DR_BUILD/yahoo_sim" "${YSIM_ARGS[@]}" --dump "$s" "$iv" "$from" "$to"; done | sort
}
historic() { dagrun run yahoo_historic --conf "$1"; }
SYMS=(AAPL WSU.DE ^GSPC BRK-B EURUSD=X NEWCO 7203.T)
SYMS_JSON='["AAPL", "WSU.DE", "^GSPC", "BRK-B", "EURUSD=X", "NEWCO", "7203.T"]'

# ---- daily: exact text, one request per symbol, registry from meta, then none, then one each
new_db yahoo
start_yahoo --limit 5 --limit-window-ms 1000
write_yconfig "$CONFIG" 4 "$LIMITS"
historic "{\"symbols\": $SYMS_JSON, \"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "first yahoo_historic run exits 0" "$rc" 0
expect_eq "one chart request per symbol (1d has no range limit)" "$(ystat .chart_requests)" 7
expected "$BOOT" "$END" 1d "${SYMS[@]}" >"$T_WORK/expected"
stored >"$T_WORK/stored"
expect_eq "candle count equals the simulator's (null entries are missing candles)" \
    "$(wc -l <"$T_WORK/stored")" "$(wc -l <"$T_WORK/expected")"
check "every stored value equals the simulator's text (230.0399932861328, 38.0)" \
    cmp -s "$T_WORK/stored" "$T_WORK/expected"
expect_eq "no zero stands in for a null entry" "$(q "select count(*) from ohlcv where open = 0 or volume = 0")" 0
expect_eq "day candles keyed at the UTC midnight of the trading date (Tokyo's too)" \
    "$(q "select count(*) from ohlcv where extract(epoch from ts)::bigint % 86400 <> 0")" 0
expect_eq "assets registered from meta, listing date from firstTradeDate" \
    "$(q "select name||','||asset_type||','||exchange||','||currency||','||listing_date from assets where source='yahoo' and symbol='AAPL'")" \
    "Apple Inc.,equity,NMS,USD,1980-12-12"
expect_eq "a listing before 1970 (^GSPC)" "$(q "select listing_date from assets where symbol='^GSPC'")" 1927-12-30
expect_eq "NEWCO's candles start at its listing" \
    "$(q "select min(ts)::date from ohlcv where symbol='NEWCO'")" 2024-03-15
yreset
historic "{\"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "second run (the registered symbols) exits 0" "$rc" 0
expect_eq "second run makes no request" "$(ystat .requests)" 0
yreset
curl -sf "$YSIM_URL/__sim/config?last_day=2024-07-01" >/dev/null
historic "{\"bootstrap_date\": \"$BOOT\", \"end_date\": \"2024-07-01\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a trading day later exits 0" "$rc" 0
expect_eq "a trading day later makes one request per symbol" "$(ystat .chart_requests)" 7
YSIM_ARGS+=(--last-day 2024-07-01)
expected "$BOOT" 2024-07-01 1d "${SYMS[@]}" >"$T_WORK/expected"
stored >"$T_WORK/stored"
check "a day later, every stored value equals the simulator's" cmp -s "$T_WORK/stored" "$T_WORK/expected"
stop_yahoo

# ---- an unknown symbol fails with chart.error's words; one outside the alphabet is refused
new_db yahoo_bad_syms
start_yahoo
write_yconfig "$CONFIG" 2 "$LIMITS"
historic '{"symbols": ["AAPL", "NOSUCH", "AA PL", "x/y"], "bootstrap_date": "2024-01-01", "end_date": "2024-06-28"}' >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a run with bad symbols is partial (exit 3)" "$rc" 3
check "an unknown symbol fails with Yahoo's message" \
    grep -q 'NOSUCH: Not Found: No data found, symbol may be delisted' "$T_WORK/out"
check "a symbol outside the alphabet is refused before any request" \
    grep -q 'symbol \\"AA PL\\" has characters outside Yahoo' "$T_WORK/out"
expect_eq "requests only for the two in the alphabet" "$(ystat .chart_requests)" 2
expect_eq "the good one is stored" "$(q "select count(distinct symbol) from ohlcv")" 1
stop_yahoo

# ---- bad answers: HTML and truncated JSON retried; a negative and a non-numeric price
# dropped and warned; out-of-order and duplicated candles sorted, the duplicate dropped
new_db yahoo_faults
start_yahoo --fault-html 1 --fault-truncate 2 --fault-bad-prices 3 --fault-unordered 4
write_yconfig "$CONFIG" 1 "$LIMITS"
historic '{"symbols": ["AAPL", "WSU.DE"], "bootstrap_date": "2023-01-01", "end_date": "2024-06-28"}' >"$T_WORK/out" 2>&1; rc=$?
expect_eq "bad answers: the run exits 0" "$rc" 0
check "an HTML answer is retried as not JSON" grep -q 'answer is not JSON' "$T_WORK/out"
check "a negative price is dropped and warned" grep -q 'a price is zero or negative; candle dropped' "$T_WORK/out"
check "a non-numeric price is dropped and warned" grep -q 'a price is not a number; candle dropped' "$T_WORK/out"
check "a duplicated candle is dropped and warned" grep -q 'a second candle at the same time' "$T_WORK/out"
expected 2023-01-01 2024-06-28 1d AAPL WSU.DE >"$T_WORK/expected"
stored >"$T_WORK/stored"
expect_eq "every candle but the two bad ones is stored" "$(wc -l <"$T_WORK/stored")" "$(( $(wc -l <"$T_WORK/expected") - 2 ))"
expect_eq "and each stored one equals the simulator's" "$(comm -23 "$T_WORK/stored" "$T_WORK/expected" | wc -l)" 0
stop_yahoo

new_db yahoo_error200
start_yahoo --fault-error200 1
write_yconfig "$CONFIG" 1 "$LIMITS"
historic '{"symbols": ["AAPL", "WSU.DE"], "bootstrap_date": "2024-01-01", "end_date": "2024-06-28"}' >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a chart.error in a 200 answer fails its item: partial (exit 3)" "$rc" 3
check "with its message" grep -q 'Internal Server Error: Temporary failure, try later' "$T_WORK/out"
stop_yahoo

# ---- 1m candles: Yahoo's 8 days per request, the live point after period2 left out, and a
# bootstrap before the listing jumps to firstTradeDate
YDAY=$(date -u -d yesterday +%F)
B20=$(date -u -d '20 days ago' +%F)
LISTED=$(date -u -d '5 days ago' +%F)
new_db yahoo_1m
start_yahoo --last-day "$YDAY" --trailing-point --newco-first-day "$LISTED"
write_yconfig "$CONFIG" 2 "$LIMITS"
historic "{\"symbols\": [\"AAPL\", \"NEWCO\"], \"candle_interval\": \"1m\", \"bootstrap_date\": \"$B20\", \"end_date\": \"$YDAY\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "1m run exits 0" "$rc" 0
days=$(( ($(date -ud "$YDAY" +%s) - $(date -ud "$B20" +%s)) / 86400 + 1 ))
expect_eq "AAPL: ceil(days / 8) requests" "$(ystat '.by_symbol.AAPL')" $(( (days + 7) / 8 ))
expect_eq "NEWCO: one request, then the jump to its listing" "$(ystat '.by_symbol.NEWCO')" \
    $(( 1 + ( ($(date -ud "$YDAY" +%s) - $(date -ud "$LISTED" +%s)) / 86400 + 1 + 7 ) / 8 ))
expect_eq "no 422 (no chunk over 8 days)" "$(ystat .responses_422)" 0
expected "$B20" "$YDAY" 1m AAPL NEWCO >"$T_WORK/expected"
stored >"$T_WORK/stored"
check "1m candles equal the simulator's, the live point left out" cmp -s "$T_WORK/stored" "$T_WORK/expected"
stop_yahoo

finish
