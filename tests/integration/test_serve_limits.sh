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
jq '.serve.max_connections = 20' "$CONFIG" >"$T_WORK/small.json"
serve_start "$T_WORK/small.json" --no-scheduler
SMALL_URL=$SERVE_URL SMALL_PID=$SERVE_PID
serve_start "$CONFIG" --no-scheduler

SMALL_URL=$SMALL_URL SERVE_URL=$SERVE_URL $PY "$DR_TOP/tests/api/test_limits.py" >"$T_WORK/limits.out" 2>&1
cat "$T_WORK/limits.out"
count_python "$T_WORK/limits.out"
check "the server still answers /health" [ "$(curl -s -o /dev/null -w '%{http_code}' "$SERVE_URL/health")" = 200 ]
serve_stop
check "SIGTERM: exit 0" [ "$SERVE_RC" = 0 ]
kill -TERM "$SMALL_PID"; wait "$SMALL_PID"
finish
