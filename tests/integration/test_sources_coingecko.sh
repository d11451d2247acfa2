#!/usr/bin/env bash
# coingecko_assets and coingecko_daily against the CoinGecko simulator on a real PostgreSQL:
# the catalog by market cap, daily points as exact numbers, the demo key header, the plan's
# 365-day reach, minimal requests, incremental runs, bad answers, unknown coins, 429.
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
export CG_DEMO_KEY=sim-demo-key-1234

start_cg() {
    local pf="$T_WORK/csim.port.$RANDOM"
    CSIM_ARGS=("$@")
    "$DR_BUILD/coingecko_sim" --port 0 --port-file "$pf" "${CSIM_ARGS[@]}" >>"$T_WORK/csim.log" 2>&1 &
    CSIM_PID=$!
    T_PIDS+=("$CSIM_PID")
    local i
    for i in $(seq 1 100); do [ -s "$pf" ] && break; sleep 0.05; done
    CSIM_URL="http://127.0.0.1:$(cat "$pf")"
    export CSIM_URL
}
stop_cg() { kill "$CSIM_PID" 2>/dev/null; wait "$CSIM_PID" 2>/dev/null; }
cstat() { curl -sf "$CSIM_URL/__sim/stats" | jq -r "$1"; }
creset() { curl -sf "$CSIM_URL/__sim/reset" >/dev/null; }

# write_cconfig FILE WORKERS LIMITS_JSON
write_cconfig() {
    cat >"$1" <<JSON
{
  "dags_dir": "$DR_TOP/dags",
  "plugin_dir": "\${DAGRUN_PLUGIN_DIR}",
  "max_active_tasks": $2,
  "log_format": "json",
  "heartbeat_sec": 1,
  "heartbeat_timeout_sec": 5,
  "sources": {
    "coingecko": {
      "base_url": "\${CSIM_URL}",
      "headers": { "x-cg-demo-api-key": "\${CG_DEMO_KEY}" },
      "limits": $3,
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
LIMITS='[{"requests": 5, "per": "1s"}, {"requests": 10000, "per": "30d"}]'

# same_as_sim FROM TO ID...: 0 when ohlcv holds exactly the simulator's points of the coins
# (numerically: 1.72e-05 is stored as 0.0000172), each as open = high = low = close.
same_as_sim() {
    local from=$1 to=$2 id; shift 2
    for id in "$@"; do "$DR_BUILD/coingecko_sim" "${CSIM_ARGS[@]}" --dump "$id" "$from" "$to"; done >"$T_WORK/exp.csv"
    q "set client_min_messages = warning; drop table if exists exp; create table exp (symbol text, iv text, t bigint, price numeric, volume numeric)" >/dev/null
    psql -qAtX "$DATABASE_URL" -c "\\copy exp from '$T_WORK/exp.csv' csv" >/dev/null
    local diff
    diff=$(q "select (select count(*) from (select symbol, iv, t, price, volume from exp except
                       select symbol, candle_interval, extract(epoch from ts)::bigint, close, volume
                       from ohlcv where source = 'coingecko') a)
                   + (select count(*) from (select symbol, candle_interval, extract(epoch from ts)::bigint, close, volume
                       from ohlcv where source = 'coingecko' except select symbol, iv, t, price, volume from exp) b)
                   + (select count(*) from ohlcv where source = 'coingecko' and not (open = close and high = close and low = close))")
    [ "$diff" = 0 ] || { echo "# $diff rows differ"; return 1; }
}

YDAY=$(date -u -d yesterday +%F)
DBY=$(date -u -d '2 days ago' +%F)
REACH=$(date -u -d "@$(( ( $(date +%s) - 365 * 86400 ) / 86400 * 86400 + 86400 ))" +%F)
OLD=$(date -u -d '600 days ago' +%F)

# ---- the catalog: the top 5 in pages of 2, keyed by coin id
new_db coingecko
start_cg --demo-key "$CG_DEMO_KEY" --live-point --last-day "$DBY"
write_cconfig "$CONFIG" 2 "$LIMITS"
dagrun run coingecko_assets --conf '{"top": 5, "per_page": 2}' >"$T_WORK/out" 2>&1; rc=$?
expect_eq "coingecko_assets exits 0" "$rc" 0
expect_eq "three pages asked" "$(cstat .markets_requests)" 3
expect_eq "the top 5 by market cap, keyed by coin id" \
    "$(q "select string_agg(symbol, ',' order by symbol) from assets where source = 'coingecko'")" \
    "binancecoin,bitcoin,ethereum,solana,tether"
expect_eq "a coin's row" "$(q "select name||','||asset_type||','||currency from assets where symbol = 'bitcoin'")" \
    "Bitcoin,crypto,usd"

# ---- daily: one request per coin from the plan's reach, values exact; again: none
creset
dagrun run coingecko_daily --conf "{\"bootstrap_date\": \"$OLD\", \"end_date\": \"$DBY\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "first coingecko_daily run exits 0" "$rc" 0
expect_eq "one request per coin" "$(cstat .chart_requests)" 5
expect_eq "never before the plan's 365 days (no 401)" "$(cstat .responses_401)" 0
check "every stored value equals the simulator's, from the plan's reach" \
    same_as_sim "$REACH" "$DBY" binancecoin bitcoin ethereum solana tether
expect_eq "daily points keyed at 00:00 UTC, the live point left out" \
    "$(q "select count(*) from ohlcv where extract(epoch from ts)::bigint % 86400 <> 0")" 0
creset
dagrun run coingecko_daily --conf "{\"bootstrap_date\": \"$OLD\", \"end_date\": \"$DBY\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "second run exits 0" "$rc" 0
expect_eq "second run makes no request" "$(cstat .requests)" 0
creset
curl -sf "$CSIM_URL/__sim/config?last_day=$YDAY" >/dev/null
dagrun run coingecko_daily --conf "{\"bootstrap_date\": \"$OLD\", \"end_date\": \"$YDAY\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a day later exits 0" "$rc" 0
expect_eq "a day later makes one request per coin" "$(cstat .chart_requests)" 5
CSIM_ARGS+=(--last-day "$YDAY")
check "a day later, every stored value equals the simulator's" \
    same_as_sim "$REACH" "$YDAY" binancecoin bitcoin ethereum solana tether
stop_cg

# ---- a refused demo key stops the run and names the variable, never its value
new_db coingecko_key
start_cg --demo-key "$CG_DEMO_KEY"
write_cconfig "$CONFIG" 1 "$LIMITS"
CG_DEMO_KEY=wrong-key-5678 "$DR_BUILD/dagrun" -c "$CONFIG" run coingecko_assets >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a refused key: exit 1" "$rc" 1
check "the error names the key's variable" grep -q 'check CG_DEMO_KEY' "$T_WORK/out"
check "and never its value" bash -c "! grep -q wrong-key-5678 '$T_WORK/out'"
stop_cg

# ---- coin ids: an unknown one fails with CoinGecko's message, one outside the alphabet is
# refused before any request, the good one is stored
new_db coingecko_ids
start_cg --demo-key "$CG_DEMO_KEY" --last-day "$DBY"
write_cconfig "$CONFIG" 2 "$LIMITS"
dagrun run coingecko_daily --conf "{\"symbols\": [\"bitcoin\", \"no-such-coin\", \"Bit Coin\"], \"bootstrap_date\": \"$OLD\", \"end_date\": \"$DBY\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "bad coin ids: partial (exit 3)" "$rc" 3
check "an unknown coin fails with CoinGecko's message" grep -q 'no-such-coin: coin not found' "$T_WORK/out"
check "an id outside the alphabet is refused before any request" \
    grep -q 'coin id \\"Bit Coin\\" has characters outside' "$T_WORK/out"
expect_eq "requests only for the two in the alphabet" "$(cstat '.chart_requests + .responses_404')" 2
check "the good one is stored exactly" same_as_sim "$REACH" "$DBY" bitcoin
stop_cg

# ---- bad answers: HTML and truncated JSON retried; negative and null prices dropped and
# warned; points out of order and duplicated sorted, the duplicate dropped
new_db coingecko_faults
start_cg --demo-key "$CG_DEMO_KEY" --last-day "$DBY" --fault-html 1 --fault-truncate 2 \
    --fault-bad-prices 3 --fault-unordered 4
write_cconfig "$CONFIG" 1 "$LIMITS"
dagrun run coingecko_daily --conf "{\"symbols\": [\"bitcoin\", \"ethereum\"], \"bootstrap_date\": \"$OLD\", \"end_date\": \"$DBY\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "bad answers: the run exits 0" "$rc" 0
check "an HTML answer is retried as not JSON" grep -q 'answer is not JSON' "$T_WORK/out"
check "a negative price is dropped and warned" grep -q 'a price is zero or negative; candle dropped' "$T_WORK/out"
check "a null price is dropped and warned" grep -q 'a price is null; candle dropped' "$T_WORK/out"
check "a duplicated point is dropped and warned" grep -q 'a second candle at the same time' "$T_WORK/out"
n_exp=$(for id in bitcoin ethereum; do "$DR_BUILD/coingecko_sim" --last-day "$DBY" --dump "$id" "$REACH" "$DBY"; done | wc -l)
expect_eq "every point but the two bad ones is stored" "$(q "select count(*) from ohlcv")" $((n_exp - 2))
stop_cg

# ---- 429 with Retry-After: the simulator allows 3 a second, the source is set to 5: every
# 429 is waited out (Retry-After) and retried, every point stored
new_db coingecko_429
start_cg --demo-key "$CG_DEMO_KEY" --last-day "$DBY" --limit 3 --limit-window-ms 1000
write_cconfig "$CONFIG" 4 "$LIMITS"
dagrun run coingecko_daily --conf "{\"symbols\": [\"bitcoin\", \"ethereum\", \"tether\", \"binancecoin\", \"solana\", \"usd-coin\", \"shiba-inu\", \"wrapped-bitcoin\"], \"bootstrap_date\": \"$OLD\", \"end_date\": \"$DBY\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "429s waited out: the run exits 0" "$rc" 0
check "some answers were 429" test "$(cstat .responses_429)" -ge 1
check "and retried after Retry-After" grep -q 'HTTP 429 (Retry-After)' "$T_WORK/out"
check "every point stored, exactly (shiba-inu's 1e-05 prices too)" \
    same_as_sim "$REACH" "$DBY" bitcoin ethereum tether binancecoin solana usd-coin shiba-inu wrapped-bitcoin
stop_cg

finish
