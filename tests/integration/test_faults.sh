#!/usr/bin/env bash
# Broker faults from the simulator's fault injection: 429 storms (with and without
# Retry-After), 5xx, slow answers past the timeout, resets mid-body, truncated JSON, endless
# bodies (the size cap), wrong Content-Type, JSON of the wrong shape, bad prices. For each:
# the documented run state and exit code, every good candle stored exactly as served, bad
# ones counted, no hang. Knobs (make torture): DR_FAULT_P (probability of the transient
# faults, default 0.3), DR_FAULT_STORM (429 storm length, default 12), DR_FAULT_INSTRUMENTS
# (default 10).
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
BOOT=2021-01-01
END=2024-06-28
P=${DR_FAULT_P:-0.3}
STORM=${DR_FAULT_STORM:-12}
N=${DR_FAULT_INSTRUMENTS:-10}
TRIES=$(( ${DR_FAULT_RETRIES:-7} + 1 ))
CONF="{\"limit\": $N, \"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}"

# The shipped DAGs with short retry delays and more item retries (the delays are the
# DAG's business, the behaviour under faults is the runtime's): 8 tries of an item
# (DR_FAULT_RETRIES + 1).
mkdir -p "$T_WORK/dags"
sed -e 's/retry_delay: 2s/retry_delay: 100ms/' -e 's/max_retry_delay: 5m/max_retry_delay: 1s/' \
    -e "s/retries: 3/retries: ${DR_FAULT_RETRIES:-7}/g" "$DR_TOP/dags/kite_historic.yaml" >"$T_WORK/dags/kite_historic.yaml"
cp "$DR_TOP/dags/kite_instruments.yaml" "$T_WORK/dags/"

start_sim --instruments "$N" --rate 0 --seed 11
# timeout 1 s (the slow fault sleeps 3 s), body cap 1 MiB (a day-candle body is ~30 KiB),
# 3 transport retries per request.
write_config "$CONFIG.in" 0 3 4
jq --arg d "$T_WORK/dags" '.dags_dir = $d | .sources.kite.timeout_ms = 1000
    | .sources.kite.max_body_bytes = 1048576 | .sources.kite.retry_delay_ms = 20
    | .sources.kite.max_retry_delay_ms = 200' "$CONFIG.in" >"$CONFIG"

NOFAULT="fault_5xx=0&fault_slow=0&fault_truncate=0&fault_malformed=0&fault_reset=0&fault_wrong_type=0&fault_wrong_shape=0&fault_bad_prices=0&fault_endless=0&fault_429_storm=0&retry_after=1"
# fresh NAME: a new database with the instruments loaded (no faults), the sim's stats reset.
fresh() {
    new_db "$1"
    curl -sf "$SIM_URL/__sim/config?$NOFAULT" >/dev/null
    dagrun run kite_instruments >/dev/null 2>&1 || not_ok "$1: kite_instruments failed"
    sim_reset
}
# historic NAME FAULTS: runs kite_historic with the faults set; sets RC, SECS, OUT.
historic() {
    curl -sf "$SIM_URL/__sim/config?$2" >/dev/null || not_ok "$1: sim config $2 refused"
    OUT=$T_WORK/$1.out
    local t0; t0=$(date +%s.%N)
    timeout 120 "$DR_BUILD/dagrun" -c "$CONFIG" run kite_historic --conf "$CONF" >"$OUT" 2>&1; RC=$?
    SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    curl -sf "$SIM_URL/__sim/config?$NOFAULT" >/dev/null
}
run_state() { q "select state from dagrun.dag_run where dag_id='kite_historic'"; }
counter() { q "select coalesce((counters->>'$1')::bigint, 0) from dagrun.dag_run where dag_id='kite_historic'"; }
injected() { sim_stat ".faults_injected[\"$1\"] // 0"; }
same_as_sim() {
    expected_rows "$BOOT" "$END" >"$T_WORK/expected"; stored_rows >"$T_WORK/stored"
    cmp -s "$T_WORK/stored" "$T_WORK/expected"
}
no_crash() { ! grep -qiE 'segmentation|sanitizer|assert|core dumped|double free' "$OUT"; }

# ---- transient faults: retried until the data arrives; run success, table = the sim's
transient() {
    local name=$1 fault=$2 key=$3
    fresh "$name"
    historic "$name" "$fault"
    echo "# $name ($fault): exit $RC in $SECS s, $(injected "$key") injected"
    expect_eq "$name: exits 0" "$RC" 0
    expect_eq "$name: run success" "$(run_state)" success
    check "$name: faults were injected" test "$(injected "$key")" -gt 0
    check "$name: every candle stored exactly as served" same_as_sim
    expect_eq "$name: no duplicate candle" "$(q "select count(*) - count(distinct (instrument_token, candle_interval, ts)) from kite_ohlcv_historic")" 0
    check "$name: no crash" no_crash
    expect_le "$name: done in time (s)" "$SECS" 60
}
transient 5xx "fault_5xx=$P" 5xx
check "5xx: the retry is logged with the URL" grep -q 'GET http://127.0.0.1:[0-9]*/instruments/historical/[0-9]*/day?from=.*: HTTP 50[0-4], retry' "$OUT"
transient slow "fault_slow=$P&slow_ms=3000" slow
check "slow: the timeout is logged" grep -qi 'timed out' "$OUT"
transient reset "fault_reset=$P" reset
transient truncate "fault_truncate=$P" truncate
transient wrong_type "fault_wrong_type=$P" wrong_type
check "wrong Content-Type is named in the log" grep -q 'unexpected Content-Type' "$OUT"
transient endless "fault_endless=$P" endless
check "endless: refused at the body cap" grep -q 'over the 1 MiB cap' "$OUT"
transient storm_retry_after "fault_429_storm=$STORM&retry_after=1" 429_storm
check "429 storm: Retry-After is honoured" grep -q 'HTTP 429 (Retry-After)' "$OUT"
transient storm_no_retry_after "fault_429_storm=$STORM&retry_after=0" 429_storm
check "429 storm without Retry-After: backoff" grep -q 'HTTP 429, retry in' "$OUT"
expect_eq "429 storm: the whole storm was answered and waited out" "$(injected 429_storm)" "$STORM"

# ---- bad prices (negative, zero, NaN, high < low): dropped, counted, warned; rest stored
fresh bad_prices
historic bad_prices "fault_bad_prices=0.5"
dropped=$(counter dropped)
expect_eq "bad prices: exits 0" "$RC" 0
expect_eq "bad prices: run success (with warnings)" "$(run_state)" success
check "bad prices: injected" test "$(injected bad_prices)" -gt 0
expect_eq "bad prices: one dropped candle per injected fault" "$dropped" "$(injected bad_prices)"
expected_rows "$BOOT" "$END" >"$T_WORK/expected"; stored_rows >"$T_WORK/stored"
expect_eq "bad prices: stored = served - dropped" "$(wc -l <"$T_WORK/stored")" $(( $(wc -l <"$T_WORK/expected") - dropped ))
expect_eq "bad prices: every stored candle is one the sim served" "$(comm -23 "$T_WORK/stored" "$T_WORK/expected" | wc -l)" 0
expect_eq "bad prices: no stored candle breaks the candle rules" \
    "$(q "select count(*) from kite_ohlcv_historic where open <= 0 or high <= 0 or low <= 0 or close <= 0 or low > least(open, close) or high < greatest(open, close) or volume < 0")" 0
check "bad prices: warnings stored on the run" test "$(q "select jsonb_array_length(warnings) from dagrun.dag_run where dag_id='kite_historic'")" -gt 0
check "bad prices: the log names instrument, timestamp and reason" grep -qE 'NSE:SIM[0-9]+: dropped candle [0-9-]+T[0-9:]+\+0530: (price is not|low is above|high is below)' "$OUT"

# ---- wrong shape (valid JSON, not candles): that item failed, never retried; others stored.
# One of the sim's shapes, {"candles":[1,2,3]}, is a candle array of bad candles: those are
# dropped and counted like any bad candle, and the item is skipped (no data).
fresh wrong_shape
historic wrong_shape "fault_wrong_shape=0.4"
k=$(injected wrong_shape)
failed=$(q "select count(*) from dagrun.task_instance where task_id='fetch' and state='failed'")
skipped=$(q "select count(*) from dagrun.task_instance where task_id='fetch' and state='skipped'")
echo "# wrong_shape: exit $RC, $k of $N answers had the wrong shape: $failed items failed, $skipped skipped"
expect_eq "wrong shape: each wrong answer fails its item (or skips it, bad candles dropped)" "$((failed + skipped))" "$k"
expect_eq "wrong shape: the skipped items' bad candles are counted" "$(counter dropped)" "$((3 * skipped))"
expect_eq "wrong shape: not retried (one request per instrument)" "$(sim_stat .historical_requests)" "$N"
if [ "$failed" -gt 0 ] && [ "$failed" -lt "$N" ]; then
    expect_eq "wrong shape: exit 3 (partial)" "$RC" 3
    expect_eq "wrong shape: run partial" "$(run_state)" partial
fi
expect_eq "wrong shape: each failed item's error says why" \
    "$(q "select count(*) from dagrun.task_instance where task_id='fetch' and state='failed' and error ~ 'bad response: (candles is|data is|status is|not a JSON)'")" "$failed"
# the instruments that succeeded have exactly the sim's candles, the others nothing
ok_tokens=$(q "select i.instrument_token from dagrun.task_instance t join instruments i on t.map_key = i.exchange||':'||i.tradingsymbol where t.task_id='upsert' and t.state='success' order by 1")
for tok in $ok_tokens; do sim_dump "$tok" day "$BOOT" "$END"; done | sort >"$T_WORK/expected"
stored_rows >"$T_WORK/stored"
check "wrong shape: good items stored exactly, failed items not at all" cmp -s "$T_WORK/stored" "$T_WORK/expected"
check "wrong shape: no crash" no_crash

# ---- every answer of the wrong shape: nothing stored; failed (exit 1) when every item
# failed, partial (exit 3) when some were skipped
fresh all_wrong_shape
historic all_wrong_shape "fault_wrong_shape=1"
skipped=$(q "select count(*) from dagrun.task_instance where task_id='fetch' and state='skipped'")
if [ "$skipped" = 0 ]; then want="1 failed"; else want="3 partial"; fi
expect_eq "all wrong shape: exit code and run state" "$RC $(run_state)" "$want"
expect_eq "all wrong shape: no item succeeded" "$(q "select count(*) from dagrun.task_instance where task_id in ('fetch','upsert') and state='success'")" 0
expect_eq "all wrong shape: nothing stored" "$(q 'select count(*) from kite_ohlcv_historic')" 0

# ---- 5xx until give-up: bounded attempts, item failed after its retries, exit 1, in time
fresh give_up
historic give_up "fault_5xx=1"
echo "# 5xx storm: exit $RC in $SECS s after $(sim_stat .historical_requests) requests"
expect_eq "5xx storm: exits 1" "$RC" 1
expect_eq "5xx storm: run failed" "$(run_state)" failed
# per item: TRIES tries x (1 + 3 transport retries)
expect_le "5xx storm: attempts bounded by retries" "$(sim_stat .historical_requests)" $(( N * TRIES * 4 ))
check "5xx storm: the item's error names the status and the attempts" \
    test "$(q "select count(*) from dagrun.task_instance where task_id='fetch' and state='failed' and error ~ 'HTTP 50[0-4] '")" = "$N"
expect_le "5xx storm: no hang (s)" "$SECS" 60

# ---- an endless body at every answer: refused at the cap every time, memory stays small
fresh all_endless
curl -sf "$SIM_URL/__sim/config?fault_endless=1" >/dev/null
OUT=$T_WORK/all_endless.out
CONF1="{\"limit\": 1, \"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}"
/usr/bin/time -f 'maxrss_kb=%M' -o "$T_WORK/time" timeout 120 "$DR_BUILD/dagrun" -c "$CONFIG" \
    run kite_historic --conf "$CONF1" >"$OUT" 2>&1; RC=$?
curl -sf "$SIM_URL/__sim/config?$NOFAULT" >/dev/null
rss=$(sed -n 's/^maxrss_kb=//p' "$T_WORK/time")
echo "# endless bodies: exit $RC, max RSS ${rss} KiB"
expect_eq "endless bodies: exits 1 (the item failed for good)" "$RC" 1
check "endless bodies: error names the cap" test "$(q "select count(*) from dagrun.task_instance where task_id='fetch' and error ~ 'over the 1 MiB cap'")" = 1
expect_le "endless bodies: max RSS stays under 100 MiB (KiB)" "${rss:-999999}" 102400

stop_sim
finish
