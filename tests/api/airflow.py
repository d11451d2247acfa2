"""Helpers for the `dagrun serve` tests: an HTTP client, Airflow schema validation (a real
JSON-Schema library, python3-jsonschema, against tests/api/airflow-v2-schemas.json), a
Server-Sent Events reader, and TAP-style ok / not ok lines that the bash tests count."""
import http.client
import json
import os
import sys
import time
import urllib.parse

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "airflow-v2-schemas.json")) as f:
    SPEC = json.load(f)

PASS = 0
FAIL = 0


def ok(cond, name, detail=""):
    """Prints one result line; returns cond."""
    global PASS, FAIL
    if cond:
        PASS += 1
        print("ok - " + name, flush=True)
    else:
        FAIL += 1
        print("not ok - " + name + (": " + str(detail)[:600] if detail else ""), flush=True)
    return cond


def finish():
    print("%d passed, %d failed" % (PASS, FAIL), flush=True)
    sys.exit(0 if FAIL == 0 else 1)


def schema_errors(name, body):
    """The validation errors of body against components/schemas/<name> (empty when valid)."""
    doc = dict(SPEC)
    doc["$ref"] = "#/components/schemas/" + name
    doc.pop("$comment", None)
    v = jsonschema.Draft202012Validator(doc, format_checker=jsonschema.FormatChecker())
    return [e.message for e in v.iter_errors(body)]


def valid(name, body, what):
    errs = schema_errors(name, body)
    return ok(not errs, "%s validates against %s" % (what, name), "; ".join(errs[:3]))


class Client:
    def __init__(self, base, token=None):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.token = token

    def call(self, method, path, body=None, token="default", raw=None, headers=None):
        """(status, parsed JSON or text, seconds)."""
        h = dict(headers or {})
        tok = self.token if token == "default" else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        t0 = time.monotonic()
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode()
        secs = time.monotonic() - t0
        c.close()
        try:
            return r.status, json.loads(text), secs
        except ValueError:
            return r.status, text, secs

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def events(self, path, until_end=True, limit_s=300, on_event=None):
        """Reads a Server-Sent Events stream: a list of (event, data) until the stream ends.
        on_event(event, data) may return False to stop reading."""
        h = {"Accept": "text/event-stream"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        c = http.client.HTTPConnection(self.host, self.port, timeout=limit_s)
        c.request("GET", path, headers=h)
        r = c.getresponse()
        out = []
        if r.status != 200:
            c.close()
            return r.status, out
        ev, data = None, []
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            line = r.readline()
            if not line:
                break
            line = line.decode().rstrip("\r\n")
            if line == "":
                if ev or data:
                    d = json.loads("\n".join(data)) if data else None
                    out.append((ev or "message", d))
                    if on_event and on_event(ev, d) is False:
                        break
                ev, data = None, []
            elif line.startswith("event:"):
                ev = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        c.close()
        return 200, out


def wait_run(cli, dag_id, run_id, states, limit_s=180):
    """Polls a run until its dagrun_state is in states; returns the last body."""
    deadline = time.monotonic() + limit_s
    body = None
    while time.monotonic() < deadline:
        st, body, _ = cli.get("/api/v2/dags/%s/dagRuns/%s" % (dag_id, urllib.parse.quote(run_id)))
        if st == 200 and body.get("dagrun_state") in states:
            return body
        time.sleep(0.2)
    return body
