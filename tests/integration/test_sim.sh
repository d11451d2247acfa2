#!/usr/bin/env bash
# Self-test of the Kite broker simulator (build/.../kite_sim): wire format, auth, errors, rate
# limit, faults, stats and --dump-candles, checked with curl against a live instance.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIM=$DR_BUILD/kite_sim
[ -x "$SIM" ] || { not_ok "kite_sim not built at $SIM"; finish; }
TOK=256257          # the first instrument on NSE: exchange_token 1001 << 8 | 1
AUTH=(-H "Authorization: token sim_key:sim_token" -H "X-Kite-Version: 3")
HDR='instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange'

start_sim --instruments 5 --rate 0 --seed 7
[ -n "${SIM_URL:-}" ] && curl -sf "$SIM_URL/__sim/stats" >/dev/null || { not_ok "sim did not start"; finish; }
hist() { curl -s "${AUTH[@]}" "$SIM_URL/instruments/historical/$1"; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

# --- instrument dump: Kite's CSV, CRLF line ends ---
curl -s "${AUTH[@]}" "$SIM_URL/instruments" >"$T_WORK/inst.csv"
expect_eq "csv header" "$(head -n 1 "$T_WORK/inst.csv" | tr -d '\r')" "$HDR"
expect_eq "csv rows" "$(wc -l <"$T_WORK/inst.csv")" 6
expect_eq "csv every line ends in CRLF" "$(grep -c $'\r$' "$T_WORK/inst.csv")" 6
expect_eq "csv first row" "$(sed -n 2p "$T_WORK/inst.csv" | cut -d, -f1,2,3,5-12 | tr -d '\r')" \
    "$TOK,1001,SIM0001,0.0,,0.0,0.05,1,EQ,NSE,NSE"
expect_eq "csv content type" "$(curl -s -o /dev/null -w '%{content_type}' "${AUTH[@]}" "$SIM_URL/instruments/NSE")" "text/csv"
expect_eq "csv other exchange is header only" "$(curl -s "${AUTH[@]}" "$SIM_URL/instruments/BSE" | wc -l)" 1
expect_eq "csv needs auth" "$(code "$SIM_URL/instruments")" 403

# --- historical day candles: shape, weekdays only ---
body=$(hist "$TOK/day?from=2017-12-01+00:00:00&to=2017-12-31+00:00:00")
expect_eq "day status" "$(jq -r .status <<<"$body")" success
expect_eq "day count (21 weekdays in Dec 2017)" "$(jq '.data.candles | length' <<<"$body")" 21
expect_eq "day candles have 6 fields" "$(jq '[.data.candles[] | length] | unique' -c <<<"$body")" "[6]"
expect_eq "day ts format" "$(jq -r '.data.candles[0][0]' <<<"$body")" "2017-12-01T00:00:00+0530"
weekend=0
for d in $(jq -r '.data.candles[][0][0:10]' <<<"$body"); do
    [ "$(date -u -d "$d" +%u)" -le 5 ] || weekend=$((weekend + 1))
done
expect_eq "no weekend candles" "$weekend" 0
expect_eq "ohlc sane" "$(jq '[.data.candles[] | select(.[3] <= .[1] and .[3] <= .[4] and .[2] >= .[1] and .[2] >= .[4] and .[3] > 0)] | length' <<<"$body")" 21
expect_eq "prices on the 0.05 tick, shortest text" \
    "$(grep -oE ',[0-9]+\.[0-9]+' <<<"$body" | grep -cvE '^,[0-9]+\.([0-9]|[0-9][05])$')" 0
expect_eq "oi=1 adds a 7th field" \
    "$(hist "$TOK/day?from=2017-12-01&to=2017-12-05&oi=1" | jq -c '[.data.candles[] | length] | unique')" "[7]"
expect_eq "weekend range is empty success" \
    "$(hist "$TOK/day?from=2017-12-02&to=2017-12-03+23:59:59" | jq -c .)" '{"status":"success","data":{"candles":[]}}'
expect_eq "minute bars 09:15..15:29" \
    "$(hist "$TOK/minute?from=2017-12-15+00:00:00&to=2017-12-15+23:59:59" | jq -r '[.data.candles | length, .[0][0], .[-1][0]] | join(" ")')" \
    "375 2017-12-15T09:15:00+0530 2017-12-15T15:29:00+0530"
expect_eq "60minute bars aligned at 09:15" \
    "$(hist "$TOK/60minute?from=2017-12-15T00:00:00&to=2017-12-15%2023:59:59" | jq -r '[.data.candles[][0][11:16]] | join(" ")')" \
    "09:15 10:15 11:15 12:15 13:15 14:15 15:15"
expect_eq "json content type" \
    "$(curl -s -o /dev/null -w '%{content_type}' "${AUTH[@]}" "$SIM_URL/instruments/historical/$TOK/day?from=2017-12-01&to=2017-12-05")" \
    "application/json"

# --- determinism: overlapping ranges agree on shared timestamps ---
a=$(hist "$TOK/5minute?from=2018-03-01+09:00:00&to=2018-03-06+12:00:00")
b=$(hist "$TOK/5minute?from=2018-03-05+10:00:00&to=2018-03-08+15:30:00")
shared_a=$(jq -c '[.data.candles[] | select(.[0] >= "2018-03-05T10:00" and .[0] <= "2018-03-06T12:00")]' <<<"$a")
shared_b=$(jq -c '[.data.candles[] | select(.[0] >= "2018-03-05T10:00" and .[0] <= "2018-03-06T12:00")]' <<<"$b")
expect_eq "overlap is non-empty" "$(jq length <<<"$shared_a")" 99
expect_eq "overlapping ranges agree" "$shared_a" "$shared_b"

# --- errors ---
expect_eq "403 on wrong token" "$(code -H 'Authorization: token sim_key:nope' "$SIM_URL/instruments/historical/$TOK/day?from=2017-12-01&to=2017-12-05")" 403
expect_eq "403 body" "$(curl -s -H 'Authorization: token x:y' "$SIM_URL/instruments/historical/$TOK/day?from=2017-12-01&to=2017-12-05")" \
    '{"status":"error","message":"Incorrect `api_key` or `access_token`.","error_type":"TokenException","data":null}'
expect_eq "400 bad interval" "$(code "${AUTH[@]}" "$SIM_URL/instruments/historical/$TOK/2minute?from=2017-12-01&to=2017-12-05")" 400
expect_eq "400 bad interval message" "$(hist "$TOK/2minute?from=2017-12-01&to=2017-12-05" | jq -r '.error_type + ": " + .message')" \
    "InputException: invalid interval"
expect_eq "400 unknown token" "$(hist "999/day?from=2017-12-01&to=2017-12-05" | jq -r .message)" "invalid token"
expect_eq "400 bad from" "$(hist "$TOK/day?from=2017-13-01&to=2017-12-05" | jq -r .message)" "invalid from date"
expect_eq "400 from after to" "$(code "${AUTH[@]}" "$SIM_URL/instruments/historical/$TOK/day?from=2017-12-06&to=2017-12-05")" 400
expect_eq "day range of 2000 days is fine" "$(code "${AUTH[@]}" "$SIM_URL/instruments/historical/$TOK/day?from=2010-01-01&to=2015-06-24")" 200
expect_eq "400 over the day limit" "$(hist "$TOK/day?from=2010-01-01&to=2015-06-25" | jq -r .message)" \
    "interval exceeds max limit: 2000 days"
expect_eq "400 over the minute limit" "$(hist "$TOK/minute?from=2018-01-01&to=2018-03-03" | jq -r .message)" \
    "interval exceeds max limit: 60 days"

# --- stats ---
sim_reset
curl -s "${AUTH[@]}" "$SIM_URL/instruments" >/dev/null
n=$(hist "$TOK/day?from=2017-12-01&to=2017-12-31" | jq '.data.candles | length')
code -H 'Authorization: token a:b' "$SIM_URL/instruments/historical/$TOK/day?from=2017-12-01&to=2017-12-05" >/dev/null
hist "$((TOK + 256))/day?from=2017-12-01&to=2017-12-05" >/dev/null
stats=$(sim_stats)
expect_eq "stats counts" "$(jq -c '[.requests, .historical_requests, .instrument_requests, .candles_served]' <<<"$stats")" "[4,3,1,$((n + 3))]"
expect_eq "stats by_status" "$(jq -c .by_status <<<"$stats")" '{"200":3,"403":1}'
expect_eq "stats by token" "$(jq -c .requests_by_token <<<"$stats")" "{\"$TOK\":2,\"$((TOK + 256))\":1}"
expect_eq "stats timestamps ordered" "$(jq '.first_ts <= .last_ts and .first_ts > 0' <<<"$stats")" true
sim_reset
expect_eq "reset zeroes" "$(sim_stat '[.requests, .candles_served, .peak_rps, .first_ts] | tostring')" '[0,0,0,null]'

# --- rate limit: rate 2 burst 1, 5 quick requests ---
curl -s "$SIM_URL/__sim/config?rate=2&burst=1" >/dev/null
sim_reset
codes=""
for i in 1 2 3 4 5; do
    codes+="$(curl -s -D "$T_WORK/h$i" -o "$T_WORK/b$i" -w '%{http_code}' "${AUTH[@]}" \
        "$SIM_URL/instruments/historical/$TOK/day?from=2017-12-01&to=2017-12-05") "
done
expect_eq "only the first of 5 quick requests passes" "$codes" "200 429 429 429 429 "
expect_eq "429 body" "$(cat "$T_WORK/b2")" '{"status":"error","message":"Too many requests","error_type":"NetworkException","data":null}'
expect_eq "429 has Retry-After: 1" "$(grep -i '^retry-after:' "$T_WORK/h2" | tr -d '\r')" "Retry-After: 1"
expect_eq "peak_rps 1" "$(sim_stat .peak_rps)" 1
sleep 0.55
expect_eq "admitted again after 1/rate" "$(code "${AUTH[@]}" "$SIM_URL/instruments/historical/$TOK/day?from=2017-12-01&to=2017-12-05")" 200
curl -s "$SIM_URL/__sim/config?rate=0&fault_429_storm=2" >/dev/null
expect_eq "429 storm" "$(for i in 1 2 3; do code "${AUTH[@]}" "$SIM_URL/instruments/historical/$TOK/day?from=2017-12-01&to=2017-12-05"; echo -n ' '; done)" "429 429 200 "
expect_eq "unknown config key is 400" "$(code "$SIM_URL/__sim/config?rate_limit=3")" 400

# --- faults ---
curl -s "$SIM_URL/__sim/config?fault_5xx=1" >/dev/null
expect_eq "5xx alternates 500 and 502/503/504" \
    "$(for i in 1 2 3 4; do code "${AUTH[@]}" "$SIM_URL/instruments/historical/$TOK/day?from=2017-12-01&to=2017-12-05"; echo -n ' '; done)" \
    "500 502 500 503 "
curl -s "$SIM_URL/__sim/config?fault_5xx=0&fault_truncate=1" >/dev/null
t=$(hist "$TOK/day?from=2017-12-01&to=2017-12-31")
check "truncate gives a JSON prefix" [ -n "$t" ]
check "truncated body does not parse" bash -c '! jq . >/dev/null 2>&1 <<<"$1"' _ "$t"
curl -s "$SIM_URL/__sim/config?fault_truncate=0&fault_reset=1" >/dev/null
curl -s -o /dev/null "${AUTH[@]}" "$SIM_URL/instruments/historical/$TOK/day?from=2017-12-01&to=2017-12-31"
expect_eq "reset breaks the transfer (curl 18)" "$?" 18
curl -s "$SIM_URL/__sim/config?fault_reset=0&fault_endless=1" >/dev/null
curl -s -o /dev/null --max-filesize 1000000 --max-time 2 "${AUTH[@]}" "$SIM_URL/instruments/historical/$TOK/day?from=2017-12-01&to=2017-12-05"
rc=$?
# 63: --max-filesize hit; 28: --max-time hit first (curl versions differ on chunked bodies).
check "endless body never ends (curl $rc)" grep -qx -e 63 -e 28 <<<"$rc"
curl -s "$SIM_URL/__sim/config?fault_endless=0&fault_wrong_type=1" >/dev/null
expect_eq "wrong content type" "$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "${AUTH[@]}" "$SIM_URL/instruments/historical/$TOK/day?from=2017-12-01&to=2017-12-05")" \
    "200 text/html; charset=utf-8"
curl -s "$SIM_URL/__sim/config?fault_wrong_type=0&object_candles=1" >/dev/null
expect_eq "object candles" "$(hist "$TOK/day?from=2017-12-01&to=2017-12-01&oi=1" | jq -c '.data.candles[0] | keys')" \
    '["close","date","high","low","oi","open","volume"]'
curl -s "$SIM_URL/__sim/config?object_candles=0" >/dev/null
expect_eq "faults counted" "$(sim_stat '.faults_injected | [."5xx", .truncate, .reset, .endless, .wrong_type, ."429_storm"] | tostring')" "[4,1,1,1,1,2]"

# --- keep-alive and 8 concurrent clients ---
expect_eq "keep-alive reuses the connection" \
    "$(curl -sv -o /dev/null -o /dev/null "$SIM_URL/__sim/stats" "$SIM_URL/__sim/stats" 2>&1 | grep -c 'Re-using')" 1
pids=()
for i in 1 2 3 4 5 6 7 8; do
    curl -s -o /dev/null -w '%{http_code}\n' "${AUTH[@]}" \
        "$SIM_URL/instruments/historical/$((TOK + 256 * (i % 5)))/minute?from=2018-01-01&to=2018-02-28" >"$T_WORK/par$i" &
    pids+=($!)
done
wait "${pids[@]}"
expect_eq "8 concurrent clients served" "$(cat "$T_WORK"/par* | sort | uniq -c | tr -s ' ')" " 8 200"

# --- --dump-candles matches what is served ---
{ hist "$TOK/30minute?from=2018-03-01+00:00:00&to=2018-03-05+12:00:00&oi=1"; echo; } |
    sed 's/.*"candles":\[\[//; s/\]\]}}$//; s/\],\[/\n/g' >"$T_WORK/served.raw"
while IFS=, read -r ts rest; do
    echo "$TOK,30minute,$(date -u -d "${ts//\"/}" +%Y-%m-%dT%H:%M:%SZ),$rest"
done <"$T_WORK/served.raw" >"$T_WORK/served.csv"
"$SIM" --instruments 5 --seed 7 --dump-candles "$TOK" 30minute "2018-03-01 00:00:00" "2018-03-05 12:00:00" >"$T_WORK/dump.csv"
expect_eq "dump header" "$(head -n 1 "$T_WORK/dump.csv")" "token,interval,ts_utc_iso,open,high,low,close,volume,oi"
expect_eq "dump rows (13 + 13 + 6 bars)" "$(tail -n +2 "$T_WORK/dump.csv" | wc -l)" 32
check "dump matches served candles" cmp -s <(tail -n +2 "$T_WORK/dump.csv") "$T_WORK/served.csv"
expect_eq "dump is repeatable" \
    "$("$SIM" --instruments 5 --seed 8 --dump-candles "$TOK" day 2018-03-01 2018-03-05 | md5sum | cut -c1-8)" \
    "$("$SIM" --instruments 5 --seed 8 --dump-candles "$TOK" day 2018-03-01 2018-03-05 | md5sum | cut -c1-8)"
check "another seed gives other prices" [ "$("$SIM" --seed 8 --dump-candles "$TOK" day 2018-03-01 2018-03-05 | md5sum)" != \
    "$("$SIM" --seed 7 --dump-candles "$TOK" day 2018-03-01 2018-03-05 | md5sum)" ]
check "dump rejects a bad interval" bash -c '! "$1" --dump-candles 256257 hour 2018-03-01 2018-03-05 2>/dev/null' _ "$SIM"

# --- SIGTERM: clean exit ---
kill -TERM "$SIM_PID"
wait "$SIM_PID"
expect_eq "exit 0 on SIGTERM" "$?" 0
grep -q "^kite_sim listening on http://127.0.0.1:[0-9]*$" "$T_WORK/sim.log"
expect_eq "listening line printed" "$?" 0

finish
