#!/usr/bin/env bash
# The web page of dagrun serve in headless Chromium driven by Selenium (tests/api/test_browser.py).
# SCREENSHOT=FILE keeps the run view's screenshot there (README's is made this way).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../api/serve_lib.sh"

new_db serve_browser
start_sim --rate 0
write_config "$T_WORK/config.json" 20 3 8
serve_setup "$T_WORK/config.json"
export API_TOKEN=$SERVE_TOKEN
serve_start "$CONFIG" --no-scheduler

T_WORK=$T_WORK SERVE_URL=$SERVE_URL $PY "$DR_TOP/tests/api/test_browser.py" >"$T_WORK/browser.out" 2>&1
cat "$T_WORK/browser.out"
count_python "$T_WORK/browser.out"
serve_stop
finish
