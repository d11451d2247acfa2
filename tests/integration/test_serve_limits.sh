#!/usr/bin/env bash
# dagrun serve under hostile clients (tests/api/test_limits.py): 413, 400, 408, 503, and a
# well-behaved client still answered; the server keeps serving afterwards.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../api/serve_lib.sh"

new_db serve_limits
start_sim --rate 0
write_config "$T_WORK/config.json"
serve_setup "$T_WORK/config.json"
export API_TOKEN=$SERVE_TOKEN
jq '.serve.max_connections = 20 | .serve.protect_metrics = true' "$CONFIG" >"$T_WORK/small.json"
serve_start "$T_WORK/small.json" --no-scheduler
SMALL_URL=$SERVE_URL SMALL_PID=$SERVE_PID
serve_start "$CONFIG" --no-scheduler

SMALL_URL=$SMALL_URL SERVE_URL=$SERVE_URL $PY "$DR_TOP/tests/api/test_limits.py" >"$T_WORK/limits.out" 2>&1
cat "$T_WORK/limits.out"
count_python "$T_WORK/limits.out"
check "the server still answers /health" [ "$(curl -s -o /dev/null -w '%{http_code}' "$SERVE_URL/health")" = 200 ]
check "without protect_metrics, /metrics needs no token" [ "$(curl -s -o /dev/null -w '%{http_code}' "$SERVE_URL/metrics")" = 200 ]
serve_stop
check "SIGTERM: exit 0" [ "$SERVE_RC" = 0 ]
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
expect_eq "protect_metrics: /metrics without the token: 401" "$(code "$SMALL_URL/metrics")" 401
expect_eq "protect_metrics: /health without the token: 401" "$(code "$SMALL_URL/health")" 401
expect_eq "protect_metrics: /metrics with the token: 200" "$(code -H "Authorization: Bearer $SERVE_TOKEN" "$SMALL_URL/metrics")" 200
kill -TERM "$SMALL_PID"; wait "$SMALL_PID"

# ---- TLS: serve.tls_cert and serve.tls_key ----
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$T_WORK/key.pem" -out "$T_WORK/cert.pem" 2>/dev/null
jq --arg c "$T_WORK/cert.pem" --arg k "$T_WORK/key.pem" '.serve.tls_cert = $c | .serve.tls_key = $k' \
    "$CONFIG" >"$T_WORK/tls.json"
serve_start "$T_WORK/tls.json" --no-scheduler
url=${SERVE_URL/http:/https:}
check "TLS: the server's log says so" grep -q "(TLS)" "$SERVE_LOG"
expect_eq "TLS: /health over HTTPS with the server's certificate" \
    "$(curl -s --cacert "$T_WORK/cert.pem" -o /dev/null -w '%{http_code}' "$url/health")" 200
expect_eq "TLS: the API over HTTPS with the token" \
    "$(curl -s --cacert "$T_WORK/cert.pem" -H "Authorization: Bearer $SERVE_TOKEN" -o /dev/null -w '%{http_code}' "$url/api/v2/dags")" 200
check "TLS: plain HTTP is not answered" bash -c "! curl -sf -m 5 '$SERVE_URL/health' >/dev/null"
serve_stop
jq '.serve.tls_cert = "/nonexistent.pem" | .serve.tls_key = "/nonexistent.pem"' "$CONFIG" >"$T_WORK/tlsbad.json"
out=$("$DR_BUILD/dagrun" -c "$T_WORK/tlsbad.json" serve --no-scheduler 2>&1); rc=$?
check "TLS: a missing certificate file: exit 1, named" bash -c "[ $rc = 1 ] && grep -q nonexistent.pem <<<'$out'"
finish
