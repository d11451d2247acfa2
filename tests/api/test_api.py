"""Drives dagrun serve's Airflow API end to end (run by tests/integration/test_serve.sh, which
starts PostgreSQL, the Kite simulator and the server). Every JSON body is validated against
Airflow's schema for the operation. Writes the ids of the runs it made to $T_WORK/runs.json."""
import json
import os
import subprocess
import threading
import time
import urllib.parse
import urllib.request

from airflow import Client, finish, ok, valid, wait_run

BASE = os.environ["SERVE_URL"]
TOKEN = os.environ["API_TOKEN"]
SIM = os.environ["SIM_URL"]
cli = Client(BASE, TOKEN)
runs = {}


def q(sql):
    return subprocess.run(["psql", "-qAtX", os.environ["DATABASE_URL"], "-c", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


def sim_config(query):
    urllib.request.urlopen(SIM + "/__sim/config?" + query).read()


def rpath(dag, run_id, tail=""):
    return "/api/v2/dags/%s/dagRuns/%s%s" % (dag, urllib.parse.quote(run_id, safe=""), tail)


# ---- authentication ----
st, body, _ = cli.get("/api/v2/dags", token=None)
ok(st == 401, "no token: 401", st)
valid("HTTPExceptionResponse", body, "401 body")
st, _, _ = cli.get("/api/v2/dags", token=TOKEN + "x")
ok(st == 401, "wrong token: 401", st)
st, _, _ = cli.get("/api/v2/dags", token=TOKEN[:-1])
ok(st == 401, "token prefix: 401", st)
st, _, _ = cli.get("/health", token=None)
ok(st == 200, "/health needs no token", st)

# ---- monitor, DAGs ----
st, body, _ = cli.get("/api/v2/monitor/health")
ok(st == 200, "monitor/health: 200", st) and valid("HealthInfoResponse", body, "monitor/health")
ok(body.get("metadatabase", {}).get("status") == "healthy", "metadatabase healthy", body)

st, body, _ = cli.get("/api/v2/dags")
ok(st == 200, "GET dags: 200", st) and valid("DAGCollectionResponse", body, "GET dags")
ids = [d["dag_id"] for d in body.get("dags", [])]
ok("kite_smoke" in ids and "serve_crash" in ids, "the DAGs are listed", ids)
ok(body.get("total_entries") == len(ids), "total_entries counts them", body.get("total_entries"))
st, body, _ = cli.get("/api/v2/dags?limit=1&offset=1")
ok(st == 200 and len(body["dags"]) == 1 and body["dags"][0]["dag_id"] == ids[1],
   "GET dags pages with limit and offset", body)

st, body, _ = cli.get("/api/v2/dags/kite_smoke")
ok(st == 200, "GET dag: 200", st) and valid("DAGResponse", body, "GET dag")
st, body, _ = cli.get("/api/v2/dags/no_such_dag")
ok(st == 404, "unknown DAG: 404", st) and valid("HTTPExceptionResponse", body, "404 body")

st, body, _ = cli.call("PATCH", "/api/v2/dags/ci_smoke", {"is_paused": True})
ok(st == 200 and body.get("is_paused") is True, "PATCH is_paused true", body)
valid("DAGResponse", body, "PATCH dag")
ok(q("select paused from dagrun.dag where dag_id = 'ci_smoke'") == "t", "the pause is stored")
st, body, _ = cli.call("PATCH", "/api/v2/dags/ci_smoke", {"is_paused": False})
ok(st == 200 and body.get("is_paused") is False, "PATCH is_paused false", body)
st, body, _ = cli.call("PATCH", "/api/v2/dags/ci_smoke", {"is_paused": False, "x": 1})
ok(st == 422, "PATCH with an unknown field: 422", st)
valid("HTTPValidationError", body, "422 body")

# ---- bad conf: refused, key named, nothing recorded ----
before = q("select count(*) from dagrun.dag_run")
st, body, _ = cli.call("POST", "/api/v2/dags/kite_smoke/dagRuns",
                       {"logical_date": None, "conf": {"limitt": 3}})
ok(st in (400, 422) and "limitt" in json.dumps(body), "unknown conf key: refused, named", body)
valid("HTTPExceptionResponse", body, "bad conf body")
st, body, _ = cli.call("POST", "/api/v2/dags/kite_smoke/dagRuns",
                       {"logical_date": None, "conf": {"limit": "many"}})
ok(st in (400, 422) and "limit" in json.dumps(body), "mistyped conf value: refused, named", body)
st, body, _ = cli.call("POST", "/api/v2/dags/kite_smoke/dagRuns", {"conf": {}})
ok(st == 422, "no logical_date: 422 (the field is required, null allowed)", st)
st, body, _ = cli.call("POST", "/api/v2/dags/no_such_dag/dagRuns", {"logical_date": None})
ok(st == 404, "trigger of an unknown DAG: 404", st)
ok(q("select count(*) from dagrun.dag_run") == before, "no run recorded by refused triggers")

# ---- a 40-instrument run: trigger, live progress, success ----
st, body, secs = cli.call("POST", "/api/v2/dags/kite_smoke/dagRuns",
                          {"logical_date": None, "conf": {"limit": 40}})
ok(st == 200, "trigger: 200", (st, body)) and valid("DAGRunResponse", body, "trigger")
ok(body.get("state") == "queued", "trigger answers with the run queued", body.get("state"))
run1 = body["dag_run_id"]
runs["run1"] = run1
print("# trigger answered in %.3f s" % secs)

events, late = [], []
got_mid = threading.Event()


def late_client():
    # A client that connects mid-run: its first events are the current state.
    got_mid.wait(120)
    _, ev = cli.events(rpath("kite_smoke", run1, "/events"), limit_s=240)
    late.extend(ev)


t = threading.Thread(target=late_client)
t.start()


def on_ev(ev, data):
    if ev == "progress" and 0 < data["percent"] < 100:
        got_mid.set()
    return True


st, events = cli.events(rpath("kite_smoke", run1, "/events"), limit_s=240, on_event=on_ev)
got_mid.set()
t.join()
ok(st == 200, "events stream: 200", st)
kinds = [e for e, _ in events]
ok(kinds and kinds[0] == "state", "the stream starts with the state", kinds[:3])
states = [d["dagrun_state"] for e, d in events if e == "state"]
ok("running" in states, "the stream shows the run running", states)
pcts = [d["percent"] for e, d in events if e == "progress"]
ok(pcts == sorted(pcts) and len(set(pcts)) >= 3, "progress only increases, in several steps",
   pcts)
ok(any(d["items_total"] == 40 for e, d in events if e == "progress"), "40 items in total",
   [d for e, d in events if e == "progress"][-1:])
ok(kinds and kinds[-1] == "end" and events[-1][1]["dagrun_state"] == "success"
   and events[-1][1]["percent"] == 100, "the stream ends with the end state", events[-1:])
ok(late and late[0][0] == "state" and late[0][1]["dagrun_state"] in ("running", "success"),
   "a late client first gets the current state", late[:1])
late_p = [d["percent"] for e, d in late if e == "progress"]
ok(late_p and late_p[-1] == 100 and late[-1][0] == "end", "the late client also gets the end",
   late[-2:])

body = wait_run(cli, "kite_smoke", run1, ("success", "partial", "failed", "cancelled"))
ok(body and body["state"] == "success", "run 1 ends success", body)
valid("DAGRunResponse", body, "GET dagRun")
st, body, _ = cli.get(rpath("kite_smoke", "no_such_run"))
ok(st == 404, "unknown run: 404", st) and valid("HTTPExceptionResponse", body, "run 404 body")

# ---- task instances ----
st, body, _ = cli.get(rpath("kite_smoke", run1, "/taskInstances?limit=7&offset=3"))
ok(st == 200, "taskInstances: 200", st)
valid("TaskInstanceCollectionResponse", body, "taskInstances")
ok(len(body["task_instances"]) == 7 and body["total_entries"] == 4 + 2 * 40,
   "taskInstances pages (7 of 84)", (len(body["task_instances"]), body["total_entries"]))
st, all_tis, _ = cli.get(rpath("kite_smoke", run1, "/taskInstances?limit=1000"))
mapped = [t for t in all_tis["task_instances"] if t["task_id"] == "fetch"]
ok(sorted(t["map_index"] for t in mapped) == list(range(40)), "mapped items carry map_index",
   [t["map_index"] for t in mapped][:5])
st, body, _ = cli.get(rpath("kite_smoke", run1, "/taskInstances/fetch/3"))
ok(st == 200 and body["map_index"] == 3 and body["task_id"] == "fetch", "one mapped item", body)
valid("TaskInstanceResponse", body, "taskInstance")
st, body, _ = cli.get(rpath("kite_smoke", run1, "/taskInstances/load_instruments"))
ok(st == 200 and body["map_index"] == -1, "one unmapped task instance", body)
st, body, _ = cli.get(rpath("kite_smoke", run1, "/taskInstances/fetch/999"))
ok(st == 404, "unknown item: 404", st)

# ---- list runs ----
st, body, _ = cli.call("POST", "/api/v2/dags/ci_smoke/dagRuns",
                       {"logical_date": "2026-01-05T00:00:00Z", "dag_run_id": "api_given_id"})
ok(st == 200 and body["dag_run_id"] == "api_given_id", "trigger with a dag_run_id", body)
st, body, _ = cli.call("POST", "/api/v2/dags/ci_smoke/dagRuns",
                       {"logical_date": None, "dag_run_id": "api_given_id"})
ok(st == 409, "the same dag_run_id again: 409", st)
wait_run(cli, "ci_smoke", "api_given_id", ("success",))
st, body, _ = cli.call("POST", "/api/v2/dags/ci_smoke/dagRuns", {"logical_date": None})
second = body["dag_run_id"]
wait_run(cli, "ci_smoke", second, ("success",))
st, body, _ = cli.get("/api/v2/dags/ci_smoke/dagRuns")
ok(st == 200, "GET dagRuns: 200", st) and valid("DAGRunCollectionResponse", body, "GET dagRuns")
ok([r["dag_run_id"] for r in body["dag_runs"]] == [second, "api_given_id"],
   "newest first", [r["dag_run_id"] for r in body["dag_runs"]])
st, body, _ = cli.get("/api/v2/dags/ci_smoke/dagRuns?limit=1&offset=1")
ok(len(body["dag_runs"]) == 1 and body["dag_runs"][0]["dag_run_id"] == "api_given_id"
   and body["total_entries"] == 2, "limit and offset", body)
st, body, _ = cli.get("/api/v2/dags/ci_smoke/dagRuns?state=failed")
ok(st == 200 and body["total_entries"] == 0, "state filter", body)
st, body, _ = cli.get("/api/v2/dags/ci_smoke/dagRuns?state=bogus")
ok(st == 422, "bad state filter: 422", st)

# ---- a partially failed run, completed by clearTaskInstances ----
# Each instrument's range 2024-06-29..2025-06-30 is two chunks; the broker refuses the second
# (400 InputException), so every item stores its first chunk and fails at the second.
sim_config("reject_from=2025-03-03")
st, body, _ = cli.call("POST", "/api/v2/dags/kite_smoke/dagRuns",
                       {"logical_date": None, "conf": {"limit": 40, "end_date": "2025-06-30"}})
run2 = body["dag_run_id"]
runs["run2"] = run2
body = wait_run(cli, "kite_smoke", run2, ("success", "partial", "failed", "cancelled"))
ok(body and body["dagrun_state"] in ("partial", "failed") and body["state"] == "failed",
   "run 2 (a refused chunk) ends failed, with the chunks before it stored", body)
sim_config("reject_from=")
st, body, _ = cli.call("POST", "/api/v2/dags/kite_smoke/clearTaskInstances",
                       {"dag_run_id": run2, "only_failed": True})
ok(st == 200 and body["total_entries"] > 0, "clearTaskInstances dry run lists what failed", body)
valid("TaskInstanceCollectionResponse", body, "clearTaskInstances")
st, body, _ = cli.get(rpath("kite_smoke", run2))
ok(body["dagrun_state"] in ("partial", "failed"), "a dry run changes nothing", body)
st, body, _ = cli.call("POST", "/api/v2/dags/kite_smoke/clearTaskInstances",
                       {"dag_run_id": run2, "only_failed": True, "dry_run": False})
ok(st == 200 and body["total_entries"] > 0, "clearTaskInstances re-runs it", (st, body))
body = wait_run(cli, "kite_smoke", run2, ("success", "partial", "failed", "cancelled"))
ok(body and body["dagrun_state"] == "success", "the cleared run ends success", body)

# ---- PATCH state failed cancels a running run; a live warning reaches its stream ----
st, body, _ = cli.call("POST", "/api/v2/dags/serve_slow/dagRuns", {"logical_date": None})
slow = body["dag_run_id"]
wait_run(cli, "serve_slow", slow, ("running",))
slow_events = []
first = threading.Event()


def slow_watch():
    def mark(ev, data):
        first.set()
    _, ev = cli.events(rpath("serve_slow", slow, "/events"), limit_s=120, on_event=mark)
    slow_events.extend(ev)


tw = threading.Thread(target=slow_watch)
tw.start()
first.wait(30)
time.sleep(0.3)
# What run_notify_warning() sends from a run's process.
q("select pg_notify('dagrun_warning', json_build_object('run_id', '%s',"
  " 'message', 'NSE:X: 2 candles dropped')::text)" % slow)
time.sleep(0.5)
st, body, _ = cli.call("PATCH", rpath("serve_slow", slow), {"state": "failed"})
ok(st == 200 and body["state"] == "failed" and body["dagrun_state"] == "cancelled",
   "PATCH state failed cancels the running run", body)
valid("DAGRunResponse", body, "PATCH dagRun")
tw.join()
ok(("warning", {"message": "NSE:X: 2 candles dropped"}) in slow_events,
   "a warning sent live by the run's process reaches the stream", slow_events[-3:])
ok(slow_events and slow_events[-1][0] == "end" and slow_events[-1][1]["dagrun_state"] == "cancelled",
   "the cancelled run's stream ends cancelled", slow_events[-1:])
st, body, _ = cli.call("PATCH", rpath("serve_slow", slow), {"state": "running"})
ok(st == 422, "PATCH to a state Airflow does not allow: 422", st)

# ---- a plugin that segfaults fails its run only ----
# (Not under a sanitizer, which reports the deliberate SEGV as an error of its own.)
if not os.environ.get("DR_SANITIZER"):
    st, body, _ = cli.call("POST", "/api/v2/dags/serve_crash/dagRuns", {"logical_date": None})
    crash = body["dag_run_id"]
    runs["crash"] = crash
    body = wait_run(cli, "serve_crash", crash, ("failed", "success", "partial", "cancelled"))
    ok(body and body["dagrun_state"] == "failed" and "SIGSEGV" in (body.get("error") or ""),
       "the crashed run is failed with the signal named", body and body.get("error"))
    st, body, _ = cli.get("/api/v2/dags")
    ok(st == 200, "the server answers after the crash", st)

with open(os.path.join(os.environ["T_WORK"], "runs.json"), "w") as f:
    json.dump(runs, f)
finish()
