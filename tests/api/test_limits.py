"""Hostile clients against dagrun serve (run by tests/integration/test_serve_limits.sh): an
oversized body, deep JSON, slow headers and bodies, 1,000 idle connections, more connections
than serve.max_connections. Each must be refused with its status while a well-behaved client
is still answered. Timings are printed, never asserted (tests/bench measures them)."""
import os
import resource
import socket
import threading
import time
import urllib.parse

from airflow import Client, finish, ok

BASE = os.environ["SERVE_URL"]
SMALL = os.environ.get("SMALL_URL")   # a server with serve.max_connections 20
TOKEN = os.environ["API_TOKEN"]
cli = Client(BASE, TOKEN)
u = urllib.parse.urlparse(BASE)
HOST, PORT = u.hostname, u.port

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def conn(port=PORT):
    s = socket.create_connection((HOST, port), timeout=60)
    return s


def status_of(data):
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def read_all(s, limit_s=60):
    s.settimeout(limit_s)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        pass
    return out


def well_behaved(what):
    st, body, secs = cli.get("/api/v2/dags")
    ok(st == 200, "a well-behaved client is answered %s" % what, st)
    print("# well-behaved request %s: %.1f ms" % (what, secs * 1000))


# ---- 413: a body over 1 MiB, with Content-Length and chunked ----
# The server answers at the headers, before the body: the client reads the answer first.
s = conn()
s.sendall(b"POST /api/v2/dags/ci_smoke/dagRuns HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
          + TOKEN.encode() + b"\r\nContent-Type: application/json\r\n"
          b"Content-Length: 2097152\r\n\r\n")
ok(status_of(read_all(s, 30)) == 413, "a 2 MiB body (Content-Length): 413")
s.close()
s = conn()
s.sendall(b"POST /api/v2/dags/ci_smoke/dagRuns HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
          + TOKEN.encode() + b"\r\nTransfer-Encoding: chunked\r\n"
          b"Content-Type: application/json\r\n\r\n")
try:
    for _ in range(40):
        chunk = b"a" * 65536
        s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    s.sendall(b"0\r\n\r\n")
except OSError:
    pass   # the server may answer and close before the whole body is sent
ok(status_of(read_all(s, 30)) == 413, "a 2.5 MiB chunked body: 413")
s.close()
well_behaved("after oversized bodies")

# ---- 400: JSON nested deeper than 64 levels ----
deep = "[" * 65 + "]" * 65
st, body, _ = cli.call("POST", "/api/v2/dags/ci_smoke/dagRuns",
                       raw=('{"logical_date": null, "conf": {"x": %s}}' % deep).encode(),
                       headers={"Content-Type": "application/json"})
ok(st == 400 and "64" in str(body), "JSON nested 67 deep: 400", (st, body))
fine = "[" * 60 + "]" * 60
st, body, _ = cli.call("POST", "/api/v2/dags/ci_smoke/dagRuns",
                       raw=('{"logical_date": null, "conf": {"x": %s}}' % fine).encode(),
                       headers={"Content-Type": "application/json"})
ok(st == 400 and "conf" in str(body) and "64" not in str(body),
   "JSON nested 62 deep passes the depth check (its conf is then refused)", (st, body))
st, body, _ = cli.call("POST", "/api/v2/dags/ci_smoke/dagRuns", raw=b"{not json",
                       headers={"Content-Type": "application/json"})
ok(st == 400, "a body that is not JSON: 400", st)

# ---- 408: headers or body not complete within 10 s ----
results = {}


def slow_headers():
    s = conn()
    s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
    for i in range(12):        # a byte a second: never idle, never done
        time.sleep(1)
        s.sendall(b"X-Slow-%d: 1\r\n" % i)
    s.sendall(b"\r\n")
    results["headers"] = status_of(read_all(s))
    s.close()


def slow_body():
    s = conn()
    s.sendall(b"POST /api/v2/dags/ci_smoke/dagRuns HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
              + TOKEN.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n")
    for i in range(12):
        time.sleep(1)
        s.sendall(b" ")
    s.sendall(b'{"logical_date": null}'.ljust(28))
    results["body"] = status_of(read_all(s))
    s.close()


def stalled():
    s = conn()
    s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
    t0 = time.monotonic()
    data = read_all(s, 60)
    results["stalled"] = (data, time.monotonic() - t0)
    s.close()


# ---- 1,000 idle connections at once, with the slow clients ----
idle = []
for _ in range(1000):
    try:
        idle.append(conn())
    except OSError as e:
        print("# idle connection refused: %s" % e)
        break
ok(len(idle) == 1000, "1,000 idle connections opened", len(idle))
threads = [threading.Thread(target=f) for f in (slow_headers, slow_body, stalled)]
for t in threads:
    t.start()
time.sleep(2)
well_behaved("with 1,000 idle connections and three slow clients")
for t in threads:
    t.join()
ok(results.get("headers") == 408, "headers dripped over 12 s: 408", results.get("headers"))
ok(results.get("body") == 408, "a body dripped over 12 s: 408", results.get("body"))
data, secs = results.get("stalled", (b"x", 0))
ok(data == b"", "a client that stalls mid-headers is disconnected", data[:80])
print("# stalled client disconnected after %.1f s" % secs)
for s in idle:
    s.close()
well_behaved("after the hostile clients")

# ---- 503: more connections than serve.max_connections ----
if SMALL:
    su = urllib.parse.urlparse(SMALL)
    held = [conn(su.port) for _ in range(20)]
    time.sleep(0.5)
    s = conn(su.port)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    ok(status_of(read_all(s, 30)) == 503, "connection 21 of max_connections 20: 503")
    s.close()
    for h in held:
        h.close()
    time.sleep(0.5)
    small = Client(SMALL, TOKEN)
    st, _, _ = small.get("/health")
    ok(st == 200, "once they close, the next client is answered", st)
finish()
