"""dagrun serve benchmarks (tests/bench/bench_serve.sh): trigger latency over N triggers, and
W concurrent event-stream watchers of one run, each of which must get the final event.
Prints one JSON object."""
import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
from airflow import Client, wait_run  # noqa: E402

BASE = os.environ["SERVE_URL"]
TOKEN = os.environ["API_TOKEN"]
N = int(os.environ.get("TRIGGERS", "200"))
W = int(os.environ.get("WATCHERS", "500"))
cli = Client(BASE, TOKEN)
out = {}

lat = []
for _ in range(N):
    st, body, secs = cli.call("POST", "/api/v2/dags/ci_smoke/dagRuns", {"logical_date": None})
    if st != 200:
        sys.exit("trigger: HTTP %s %s" % (st, body))
    lat.append(secs * 1000)
lat.sort()
out["trigger_n"] = N
out["trigger_p50_ms"] = lat[len(lat) // 2]
out["trigger_p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
out["last_run"] = body["dag_run_id"]
wait_run(cli, "ci_smoke", body["dag_run_id"], ("success",))


async def watcher(host, port, path, started):
    r, w = await asyncio.open_connection(host, port)
    w.write(("GET %s HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer %s\r\n"
             "Accept: text/event-stream\r\n\r\n" % (path, TOKEN)).encode())
    await w.drain()
    started.append(1)
    got_end = False
    buf = b""
    while True:
        data = await r.read(65536)
        if not data:
            break
        buf += data
        if b"event: end" in buf:
            got_end = True
            break
        buf = buf[-64:]
    w.close()
    return got_end


async def watch_all():
    from urllib.parse import urlparse, quote
    u = urlparse(BASE)
    st, body, _ = cli.call("POST", "/api/v2/dags/serve_slow/dagRuns",
                           {"logical_date": None, "conf": {"n": 100}})
    run = body["dag_run_id"]
    path = "/api/v2/dags/serve_slow/dagRuns/%s/events" % quote(run, safe="")
    started = []
    tasks = [asyncio.create_task(watcher(u.hostname, u.port, path, started)) for _ in range(W)]
    res = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 300)
    return sum(1 for x in res if x is True)


out["watchers"] = W
out["watchers_ended"] = asyncio.run(watch_all())

# A well-behaved client while 1,000 idle connections and a slow client are held.
import resource  # noqa: E402
import socket  # noqa: E402
from urllib.parse import urlparse  # noqa: E402
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
u = urlparse(BASE)
idle = [socket.create_connection((u.hostname, u.port)) for _ in range(1000)]
slow = socket.create_connection((u.hostname, u.port))
slow.sendall(b"GET /health HTTP/1.1\r\nHost: b\r\n")
time.sleep(1)
good = []
for _ in range(20):
    st, _, secs = cli.get("/api/v2/dags")
    if st != 200:
        sys.exit("well-behaved request: HTTP %s" % st)
    good.append(secs * 1000)
    slow.sendall(b"X: 1\r\n")
for c in idle + [slow]:
    c.close()
out["hostile_max_ms"] = max(good)
out["hostile_median_ms"] = sorted(good)[len(good) // 2]
print(json.dumps(out))
