#!/usr/bin/env bash
# binance_historic against the Binance simulator on a real PostgreSQL: exact values, minimal
# requests, incremental runs, request weights and the used-weight header, 429 and 418, bad
# answers and bad symbols.
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
BOOT=2017-01-01 END=2024-06-28 FIRST=2017-07-14

# start_binance ARGS...: the simulator on a free loopback port; sets BSIM_URL and BSIM_ARGS.
start_binance() {
    local pf="$T_WORK/bsim.port.$RANDOM"
    BSIM_ARGS=(--history-start "$FIRST" "$@")
    "$DR_BUILD/binance_sim" --port 0 --port-file "$pf" "${BSIM_ARGS[@]}" >>"$T_WORK/bsim.log" 2>&1 &
    BSIM_PID=$!
    T_PIDS+=("$BSIM_PID")
    local i
    for i in $(seq 1 100); do [ -s "$pf" ] && break; sleep 0.05; done
    BSIM_URL="http://127.0.0.1:$(cat "$pf")"
    export BSIM_URL
}
stop_binance() { kill "$BSIM_PID" 2>/dev/null; wait "$BSIM_PID" 2>/dev/null; }
bstat() { curl -sf "$BSIM_URL/__sim/stats" | jq -r "$1"; }
breset() { curl -sf "$BSIM_URL/__sim/reset" >/dev/null; }
bconfig() { curl -sf "$BSIM_URL/__sim/config?$1" >/dev/null; }

# write_bconfig FILE WORKERS LIMITS_JSON: WORKERS symbols at a time (the binance pool).
write_bconfig() {
    cat >"$1" <<JSON
{
  "dags_dir": "$DR_TOP/dags",
  "plugin_dir": "\${DAGRUN_PLUGIN_DIR}",
  "max_active_tasks": $2,
  "pools": { "binance": { "slots": $2 } },
  "log_format": "json",
  "heartbeat_sec": 1,
  "heartbeat_timeout_sec": 5,
  "sources": {
    "binance": {
      "base_url": "\${BSIM_URL}",
      "limits": $3,
      "ban_status": 418,
      "timeout_ms": 5000,
      "connect_timeout_ms": 2000,
      "max_retries": 3,
      "retry_delay_ms": 50,
      "max_retry_delay_ms": 3000
    }
  }
}
JSON
}
WEIGHT_1M='[{"weight": 6000, "per": "1m", "used_header": "X-MBX-USED-WEIGHT-1M"}]'

# stored / expected rows in one canonical form: symbol,interval,open_ms,open,high,low,close,volume
stored() {
    q "select symbol||','||candle_interval||','||(extract(epoch from ts)::bigint*1000)||','||open||','||high||','||low||','||close||','||volume
       from ohlcv where source = 'binance'" | sort
}
expected() {   # expected FROM TO INTERVAL SYMBOL...
    local from=$1 to=$2 iv=$3 s; shift 3
    for s in "$@"; do "$DR_BUILD/binance_sim" "${BSIM_ARGS[@]}" --dump-klines "$s" "$iv" "$from" "$to"; done | sort
}
historic() { dagrun run binance_historic --conf "$1"; }
SYMS=(BTCUSDT ETHUSDT BNBUSDT SOLUSDT XRPUSDT ADAUSDT)

# ---- first run: every value exact, the minimal requests; again: none; a day later: one each
new_db binance
start_binance --symbols 6
write_bconfig "$CONFIG" 8 "$WEIGHT_1M"
historic "{\"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "first binance_historic run exits 0" "$rc" 0
expect_eq "exchangeInfo asked once" "$(bstat .exchange_info_requests)" 1
expect_eq "assets: 6 trading symbols and one in BREAK" \
    "$(q "select count(*) filter (where active)||','||count(*) filter (where not active) from assets where source = 'binance'")" "6,1"
expect_eq "assets row of a symbol" "$(q "select name||','||asset_type||','||exchange||','||currency from assets where source='binance' and symbol='ETHUSDT'")" \
    "ETH/USDT,crypto,binance,USDT"
check "the non-ASCII exchangeInfo symbol is skipped with a warning" \
    grep -q "outside Binance's alphabet" "$T_WORK/out"
expected "$BOOT" "$END" 1d "${SYMS[@]}" >"$T_WORK/expected"
stored >"$T_WORK/stored"
expect_eq "candle count equals the simulator's" "$(wc -l <"$T_WORK/stored")" "$(wc -l <"$T_WORK/expected")"
check "every stored value equals the simulator's, text for text" cmp -s "$T_WORK/stored" "$T_WORK/expected"
expect_eq "prices keep Binance's 8 decimals" "$(q "select count(*) from ohlcv where source='binance' and scale(open) <> 8")" 0
min=0
for s in "${SYMS[@]}"; do
    n=$(grep -c "^$s," "$T_WORK/expected")
    min=$((min + (n + 999) / 1000))
done
expect_eq "klines requests are the minimum (ceil(candles since listing / 1000) per symbol)" \
    "$(bstat .klines_requests)" "$min"
expect_eq "day candles keyed at UTC midnight" \
    "$(q "select count(*) from ohlcv where source='binance' and ts <> date_trunc('day', ts at time zone 'UTC') at time zone 'UTC'")" 0
expect_eq "no 429 and no 418" "$(bstat '.responses_429 + .responses_418')" 0
breset
historic "{\"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "second run exits 0" "$rc" 0
expect_eq "second run makes no request at all" "$(bstat .requests)" 0
breset
bconfig "last_day=2024-06-29"
historic "{\"bootstrap_date\": \"$BOOT\", \"end_date\": \"2024-06-29\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a day later exits 0" "$rc" 0
expect_eq "a day later makes one klines request per symbol" "$(bstat .klines_requests)" 6
expect_eq "and no exchangeInfo request" "$(bstat .exchange_info_requests)" 0
BSIM_ARGS+=(--last-day 2024-06-29)
expected "$BOOT" 2024-06-29 1d "${SYMS[@]}" >"$T_WORK/expected"
stored >"$T_WORK/stored"
check "a day later, every stored value equals the simulator's" cmp -s "$T_WORK/stored" "$T_WORK/expected"
stop_binance

# ---- symbols given: one outside Binance's alphabet (no request), one unknown (Binance's
# message), one good; the good one is stored, the run is partial
new_db binance_syms
start_binance --symbols 6
write_bconfig "$CONFIG" 4 "$WEIGHT_1M"
historic '{"symbols": ["ETHUSDT", "NOPEUSDT", "eth/usdt", "BTC USDT"], "bootstrap_date": "2024-01-01", "end_date": "2024-06-28"}' >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a run with bad symbols is partial (exit 3)" "$rc" 3
check "an unknown symbol fails with Binance's message" grep -q 'NOPEUSDT: Binance -1121: Invalid symbol.' "$T_WORK/out"
check "a symbol outside the alphabet is refused before any request" \
    grep -q 'symbol \\"eth/usdt\\" has characters outside Binance' "$T_WORK/out"
expect_eq "klines asked only for the two symbols in the alphabet" "$(bstat .klines_requests)" 2
expected 2024-01-01 2024-06-28 1d ETHUSDT >"$T_WORK/expected"
stored >"$T_WORK/stored"
check "the good symbol is stored exactly" cmp -s "$T_WORK/stored" "$T_WORK/expected"
stop_binance

# ---- bad answers: HTML and truncated JSON are retried; prices negative, non-numeric or null
# are dropped and warned; candles out of order and duplicated are sorted, the second dropped
new_db binance_bad
start_binance --symbols 2 --fault-html 1 --fault-truncate 2 --fault-bad-prices 3 --fault-unordered 4
write_bconfig "$CONFIG" 1 "$WEIGHT_1M"
historic "{\"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "bad answers: the run exits 0" "$rc" 0
check "an HTML answer is retried as not JSON" grep -q 'answer is not JSON' "$T_WORK/out"
check "a negative price is dropped and warned" grep -q 'a price is zero or negative; candle dropped' "$T_WORK/out"
check "a non-numeric price is dropped and warned" grep -q 'a price is not a number; candle dropped' "$T_WORK/out"
check "a null price is dropped and warned" grep -q 'a price is null; candle dropped' "$T_WORK/out"
check "a duplicated candle is dropped and warned" grep -q 'a second candle at the same time' "$T_WORK/out"
expected "$BOOT" "$END" 1d BTCUSDT ETHUSDT >"$T_WORK/expected"
stored >"$T_WORK/stored"
expect_eq "every candle but the three bad ones is stored" "$(wc -l <"$T_WORK/stored")" "$(( $(wc -l <"$T_WORK/expected") - 3 ))"
expect_eq "and each stored one equals the simulator's" \
    "$(comm -23 "$T_WORK/stored" "$T_WORK/expected" | wc -l)" 0
stop_binance

new_db binance_shape
start_binance --symbols 2 --fault-shape 1
write_bconfig "$CONFIG" 1 "$WEIGHT_1M"
historic "{\"bootstrap_date\": \"2024-01-01\", \"end_date\": \"$END\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "an answer of the wrong shape fails its item: partial (exit 3)" "$rc" 3
check "its error says why" grep -q 'bad response: the answer is not an array' "$T_WORK/out"
expect_eq "the other symbol is stored" "$(q "select count(distinct symbol) from ohlcv")" 1
stop_binance

# ---- 429 with Retry-After: every worker waits; no 418; every candle stored
new_db binance_429
start_binance --symbols 8 --fault-429 5
write_bconfig "$CONFIG" 8 "$WEIGHT_1M"
historic "{\"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a 429 mid-run: the run exits 0" "$rc" 0
expect_eq "no worker went on before the Retry-After (no 418)" "$(bstat .responses_418)" 0
check "the 429 was retried after its Retry-After" grep -q 'HTTP 429 (Retry-After)' "$T_WORK/out"
expect_eq "every candle stored" "$(q "select count(*) from ohlcv")" \
    "$(expected "$BOOT" "$END" 1d BTCUSDT ETHUSDT BNBUSDT SOLUSDT XRPUSDT ADAUSDT DOGEUSDT TRXUSDT | wc -l)"
stop_binance

# ---- 418: the source stops at once, the run fails, nothing is retried early
new_db binance_418
start_binance --symbols 6 --fault-418 3
write_bconfig "$CONFIG" 1 "$WEIGHT_1M"
historic "{\"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a 418 ban fails the run (exit 1)" "$rc" 1
expect_eq "no klines request after the ban" "$(bstat .klines_requests)" 3
expect_eq "one 418" "$(bstat .responses_418)" 1
check "the error says until when" grep -q 'sources.binance is banned until 20[0-9-]*T[0-9:]*Z (Retry-After) after an HTTP 418 answer' "$T_WORK/out"
stop_binance

# ---- Retry-After as an HTTP-date: a 429 is waited out, a 418 bans until that time
new_db binance_dates
start_binance --symbols 4 --fault-429 2 --fault-418 5 --ban-ms 600000 --retry-after-date
write_bconfig "$CONFIG" 1 "$WEIGHT_1M"
historic "{\"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "Retry-After dates: the 418 fails the run (exit 1)" "$rc" 1
check "the 429 with a date was waited out and retried" grep -q 'HTTP 429 (Retry-After)' "$T_WORK/out"
until=$(grep -o 'banned until [0-9T:-]*Z' "$T_WORK/out" | head -1 | cut -d' ' -f3)
secs=$(( $(date -ud "$until" +%s) - $(date -u +%s) ))
check "the ban runs to the date given (about 600 s from now, not the 2 s of a misread date)" \
    test "$secs" -ge 500 -a "$secs" -le 610
expect_eq "no klines request after the 418" "$(bstat .klines_requests)" 5
stop_binance

# ---- the pages before a ban are committed with the item's checkpoint; once the ban is over,
# `dagrun resume` fetches only what is missing and the table equals the simulator's
new_db binance_resume
start_binance --symbols 2 --fault-418 2 --ban-ms 1000
write_bconfig "$CONFIG" 1 "$WEIGHT_1M"
historic "{\"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "banned at the second page: exit 1" "$rc" 1
expect_eq "the first page is committed" "$(q "select count(*) from ohlcv")" 1000
run=$(q "select run_id from dagrun.dag_run where dag_id = 'binance_historic' order by queued_at desc limit 1")
sleep 2   # the simulator's ban (1 s) is over
breset
dagrun resume "$run" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "resume after the ban exits 0" "$rc" 0
expected "$BOOT" "$END" 1d BTCUSDT ETHUSDT >"$T_WORK/expected"
stored >"$T_WORK/stored"
check "after the resume every stored value equals the simulator's" cmp -s "$T_WORK/stored" "$T_WORK/expected"
n=$(( ($(grep -c '^BTCUSDT,' "$T_WORK/expected") + 999) / 1000 + ($(grep -c '^ETHUSDT,' "$T_WORK/expected") + 999) / 1000 ))
expect_eq "the resume asks only for the pages not committed" "$(bstat .klines_requests)" $((n - 1))
stop_binance

# ---- weights and the used-weight header: the simulator's window is 200 weight per 2 s and
# another client takes 150 of every window; the limits say 200 per 2 s and name the header.
# Only the header tells dagrun of the other client: with it, no 429 and no 418.
new_db binance_weight
start_binance --symbols 8 --weight-limit 200 --window-ms 2000 --foreign-weight 150
write_bconfig "$CONFIG" 8 '[{"weight": 200, "per": "2s", "used_header": "X-MBX-USED-WEIGHT-1M"}]'
historic "{\"bootstrap_date\": \"2023-01-01\", \"end_date\": \"$END\", \"candle_interval\": \"1h\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "weights with another client: the run exits 0" "$rc" 0
expect_eq "no 418" "$(bstat .responses_418)" 0
expect_eq "no 429: the used-weight header kept the limiter in step" "$(bstat .responses_429)" 0
check "never over the weight budget" test "$(bstat .max_used_weight)" -le 200
expected 2023-01-01 "$END" 1h BTCUSDT ETHUSDT BNBUSDT SOLUSDT XRPUSDT ADAUSDT DOGEUSDT TRXUSDT >"$T_WORK/expected"
stored >"$T_WORK/stored"
check "1h candles equal the simulator's" cmp -s "$T_WORK/stored" "$T_WORK/expected"
stop_binance

finish
