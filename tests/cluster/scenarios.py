#!/usr/bin/env python3
"""tests/cluster/scenarios.py -- the fault scenarios of issue #17, against tests/cluster/lab.sh.

Run by `scripts/test --cluster` (tests/cluster/run.sh), after `lab.sh start`; the lab's URL and
admin key come from `lab.sh env`. Each scenario drives real traffic through HAProxy, breaks one
thing with lab.sh (kill -KILL of a process group, SIGTERM, SIGSTOP, FLUSHDB), states its invariant,
checks it against the service's own read-back (and the stores where it needs them), and prints the
measured outage window. The last line is "N passed, M failed" (skipped ones are listed, not
counted). Python's standard library only, so the lab needs nothing from a registry.

Clients behave as the contract asks a careful client to: a POST /v1/registrations carries an
Idempotency-Key and is retried with the same key on a connection error or a 5xx (and 409
"request in progress"), for at most RETRY_S; an analytics view carries its event_id and is retried
the same way. Every loop is bounded by a deadline, every scenario finishes in seconds.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlparse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "tests", "cluster", "lab.sh")
URL = urlparse(os.environ["ET_LAB_URL"])
ADMIN = os.environ["ET_LAB_ADMIN_KEY"]
STORES = os.environ.get("ET_LAB_STORES", "plain")
LOAD_S = float(os.environ.get("ET_CLUSTER_LOAD_SECONDS", "8"))
RETRY_S = 15.0          # how long a client keeps retrying one request
REQ_TIMEOUT_S = 10.0    # one attempt; longer is an outage, not a slow answer


def lab(*args, check=True):
    """Run lab.sh with args; return its stdout."""
    r = subprocess.run([LAB, *args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise RuntimeError(f"lab.sh {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


class Client:
    """One keep-alive connection to HAProxy; reconnects after any error."""

    def __init__(self, key=None, url=None, retry_s=RETRY_S, timeout_s=REQ_TIMEOUT_S):
        self.key = key
        self.conn = None
        self.url = url or URL
        self.retry_s = retry_s
        self.timeout_s = timeout_s
        self.slowest = 0.0   # the longest attempt this client waited for, answered or not (seconds)

    def request(self, method, path, body=None, headers=None):
        """(status, parsed body or None); status 0 on a connection error or timeout."""
        h = {"Content-Type": "application/json"} if body is not None else {}
        if self.key:
            h["Authorization"] = "Bearer " + self.key
        h.update(headers or {})
        data = json.dumps(body).encode() if body is not None else None
        t0 = time.monotonic()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=self.timeout_s)
            self.conn.request(method, path, body=data, headers=h)
            r = self.conn.getresponse()
            raw = r.read()
            if r.getheader("Connection", "").lower() == "close":
                self.close()
            try:
                return r.status, json.loads(raw) if raw else None
            except ValueError:
                return r.status, None
        except (OSError, http.client.HTTPException):
            self.close()
            return 0, None
        finally:
            self.slowest = max(self.slowest, time.monotonic() - t0)

    def retried(self, method, path, body, headers=None, ok=(200, 201), on_fail=None):
        """Retry a request that is safe to repeat until an answer that is not a 5xx/409-in-progress.
        on_fail(status) is called for every attempt that failed (the outage window is measured from
        them: one request retried for 18 s is 18 s of outage, not one instant).
        Returns (final status, body, first status, attempts)."""
        deadline = time.monotonic() + self.retry_s
        first, attempts = None, 0
        while True:
            st, js = self.request(method, path, body, headers)
            attempts += 1
            first = st if first is None else first
            transient = st == 0 or st >= 500 or (st == 409 and js and "in-progress" in js.get("type", ""))
            if on_fail and st not in ok and st != 402:
                on_fail(st)
            if st in ok or not transient or time.monotonic() > deadline:
                return st, js, first, attempts
            time.sleep(0.05)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def pg_scalar(sql):
    """One value from PostgreSQL (the lab's database URL; the ids in sql are ours, [a-z0-9-] only)."""
    r = subprocess.run(["psql", os.environ["ET_LAB_DATABASE_URL"], "-XtAc", sql], capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"psql: {r.stderr.strip()}")
    return r.stdout.strip()


def resp(port, *args, timeout=2.0):
    """One Redis command to 127.0.0.1:port (a node or a Sentinel), its reply as Python values; a
    Redis error reply comes back as a RuntimeError. Asked directly, not through `lab.sh status`,
    which spawns a dozen processes and took 20-55 s on the loaded 2-core machine."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"".join([f"*{len(args)}\r\n".encode()] +
                           [f"${len(str(a).encode())}\r\n{a}\r\n".encode() for a in args]))
        f = s.makefile("rb")

        def read():
            line = f.readline().rstrip(b"\r\n")
            kind, rest = line[:1], line[1:].decode()
            if kind == b"+":
                return rest
            if kind == b"-":
                raise RuntimeError(rest)
            if kind == b":":
                return int(rest)
            if kind == b"$":
                return None if rest == "-1" else f.read(int(rest) + 2)[:-2].decode()
            if kind == b"*":
                return None if rest == "-1" else [read() for _ in range(int(rest))]
            raise RuntimeError(f"unexpected reply {line!r}")
        return read()


def sentinel_ports():
    """The Sentinels of ET_LAB_REDIS_URL (redis-sentinel://h:p,h:p,h:p/eventtrack/DB)."""
    hosts = os.environ["ET_LAB_REDIS_URL"].split("://", 1)[1].split("/", 1)[0]
    return [int(h.rsplit(":", 1)[1]) for h in hosts.split(",")]


def redis_primary(sentinels=None):
    """(node name, port) of the Redis primary as the first answering Sentinel names it. The names
    follow deploy/local/ha/redis.sh's layout: redis1 at its base, redis2 at base + 1, the three
    Sentinels at base + 2..4."""
    ports = sentinels or sentinel_ports()
    for sp in ports:
        try:
            _, port = resp(sp, "SENTINEL", "get-master-addr-by-name", "eventtrack")
        except (OSError, RuntimeError, TypeError, ValueError):
            continue
        port = int(port)
        return ("redis1" if port == sentinel_ports()[0] - 2 else "redis2"), port
    raise AssertionError("no Sentinel names a Redis primary")


def pg_nodes():
    """[(node name, port)] of the PostgreSQL nodes, in ET_LAB_DATABASE_URL's order (node1, node2...)."""
    hosts = os.environ["ET_LAB_DATABASE_URL"].split("@", 1)[1].split("/", 1)[0]
    return [(f"node{i + 1}", int(h.rsplit(":", 1)[1])) for i, h in enumerate(hosts.split(","))]


def pg_primary(timeout_s=60.0):
    """(node name, port) of the node that accepts writes, waiting up to timeout_s for one."""
    deadline = time.monotonic() + timeout_s
    while True:
        for name, port in pg_nodes():
            r = subprocess.run(["psql", f"postgresql://postgres@127.0.0.1:{port}/postgres?connect_timeout=2",
                                "-XtAc", "SELECT pg_is_in_recovery()"], capture_output=True, text=True,
                               timeout=10)
            if r.returncode == 0 and r.stdout.strip() == "f":
                return name, port
        if time.monotonic() > deadline:
            raise AssertionError(f"no PostgreSQL node accepts writes after {timeout_s:.0f}s")
        time.sleep(0.5)


def new_id(kind):
    return f"{kind}-{uuid.uuid4().hex[:16]}"


class Tenant:
    """An organization with credits, one event, one session (one speaker) and its key."""

    def __init__(self, credits):
        admin = Client(ADMIN)
        self.org = new_id("org")
        st, js, _, _ = admin.retried("POST", "/v1/organizations",
                                     {"id": self.org, "name": "lab", "credits": credits})
        assert st == 201, f"create organization: {st} {js}"
        self.key = js["api_key"]
        self.credits = credits
        c = Client(self.key)
        self.event = new_id("evt")
        st, js, _, _ = c.retried("POST", "/v1/events", {"id": self.event, "organization_id": self.org,
                                                        "name": "lab"})
        assert st == 201, f"create event: {st} {js}"
        self.speaker = new_id("spk")
        self.session = new_id("ses")
        st, js, _, _ = c.retried("POST", "/v1/sessions", {"id": self.session, "event_id": self.event,
                                                          "title": "lab", "speaker_id": self.speaker})
        assert st == 201, f"create session: {st} {js}"


class Load:
    """Readers, registrants and viewers against one tenant until stop(); every outcome recorded.
    A failure is a request whose FIRST attempt was not a success: its time goes to the outage window."""

    def __init__(self, tenant, readers=2, registrants=2, viewers=1, retry_s=RETRY_S, timeout_s=REQ_TIMEOUT_S):
        self.t = tenant
        self.retry_s, self.timeout_s = retry_s, timeout_s
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.reads = {}          # status -> count (one attempt each: reads are not retried by the client)
        self.read_scores = []    # (time, score) as seen by readers, for "never goes backwards" checks
        self.decreases = 0
        self.registered = {}     # registration id -> user, every 201 a client finally got
        self.reg_final = {}      # final status -> count
        self.views = set()       # event_ids acknowledged (201 or 200 duplicate)
        self.view_final = {}
        self.fail_times = {"read": [], "registration": [], "view": []}
        self.attempt_fail_times = {"read": [], "registration": [], "view": []}  # every failed attempt
        self.fail_status = {}    # (kind, status) of every failed first attempt -> count (0: no answer)
        self.slowest = {"read": 0.0, "registration": 0.0, "view": 0.0}  # longest single attempt, seconds
        self.started = time.monotonic()
        self.threads = ([threading.Thread(target=self._reader) for _ in range(readers)] +
                        [threading.Thread(target=self._registrant) for _ in range(registrants)] +
                        [threading.Thread(target=self._viewer) for _ in range(viewers)])
        for th in self.threads:
            th.start()

    def _fail(self, kind, status=None):
        with self.lock:
            self.fail_times[kind].append(time.monotonic() - self.started)
            if status is not None:
                self.fail_status[(kind, status)] = self.fail_status.get((kind, status), 0) + 1

    def _attempt_failed(self, kind):
        def record(_status):
            with self.lock:
                self.attempt_fail_times[kind].append(time.monotonic() - self.started)
        return record

    def _done(self, kind, client):
        with self.lock:
            self.slowest[kind] = max(self.slowest[kind], client.slowest)

    def _reader(self):
        c, last = Client(timeout_s=self.timeout_s), -1
        path = f"/v1/events/{self.t.event}/leaderboard"
        while not self.stop_flag.is_set():
            st, js = c.request("GET", path)
            with self.lock:
                self.reads[st] = self.reads.get(st, 0) + 1
            if st != 200:
                self._fail("read", st)
                self._attempt_failed("read")(st)
                continue
            board = js.get("leaderboard") or []
            score = board[0]["score"] if board else 0
            if score < last:
                with self.lock:
                    self.decreases += 1
            last = max(last, score)
        self._done("read", c)

    def _registrant(self):
        c = Client(self.t.key, retry_s=self.retry_s, timeout_s=self.timeout_s)
        while not self.stop_flag.is_set():
            user = new_id("usr")
            body = {"session_id": self.t.session, "user_id": user, "organization_id": self.t.org,
                    "ticket_type": "standard", "price_paid": "10.00"}
            st, js, first, _ = c.retried("POST", "/v1/registrations", body,
                                         {"Idempotency-Key": new_id("idem")},
                                         on_fail=self._attempt_failed("registration"))
            if first not in (201, 402):
                self._fail("registration", first)
            with self.lock:
                self.reg_final[st] = self.reg_final.get(st, 0) + 1
                if st == 201:
                    self.registered[js["id"]] = user
        self._done("registration", c)

    def _viewer(self):
        c = Client(self.t.key, retry_s=self.retry_s, timeout_s=self.timeout_s)
        while not self.stop_flag.is_set():
            eid = new_id("view")
            body = {"event_id": eid, "event_type": "session_view", "user_id": new_id("att"),
                    "payload": {"session_id": self.t.session}}
            st, _, first, _ = c.retried("POST", "/v1/analytics/events", body,
                                        on_fail=self._attempt_failed("view"))
            if first not in (200, 201):
                self._fail("view", first)
            with self.lock:
                self.view_final[st] = self.view_final.get(st, 0) + 1
                if st in (200, 201):
                    self.views.add(eid)
        self._done("view", c)

    def stop(self):
        self.stop_flag.set()
        for th in self.threads:
            th.join(timeout=self.retry_s + self.timeout_s + 5)

    def window(self, kind):
        """The outage window of one kind: first to last failed attempt (retries included), seconds."""
        t = self.attempt_fail_times[kind]
        return (max(t) - min(t)) if t else 0.0

    def report(self):
        return (f"reads {dict(sorted(self.reads.items()))}; registrations {dict(sorted(self.reg_final.items()))}"
                f" ({len(self.fail_times['registration'])} first attempts failed, window "
                f"{self.window('registration'):.2f}s); views {dict(sorted(self.view_final.items()))} "
                f"({len(self.fail_times['view'])} first attempts failed, window {self.window('view'):.2f}s); "
                f"read failures {len(self.fail_times['read'])} (window {self.window('read'):.2f}s); "
                f"failed first attempts by status {self.fail_status}; score decreases seen by readers "
                f"{self.decreases}; slowest attempt (s) "
                f"{ {k: round(v, 2) for k, v in self.slowest.items()} }")


def run_load(seconds, tenant=None, at=None, **kw):
    """Run load for `seconds`, calling at(load) once after a third of it; returns the Load."""
    t = tenant or Tenant(credits=100000)
    ld = Load(t, **kw)
    try:
        time.sleep(seconds / 3)
        if at:
            at(ld)
        time.sleep(seconds * 2 / 3)
    finally:
        ld.stop()
    return ld


def check_constraint_a(ld):
    """Every 201 is present, and balance + registrations = credited (exactly one credit each)."""
    c = Client(ld.t.key)
    for rid in ld.registered:
        st, js, _, _ = c.retried("GET", f"/v1/registrations/{rid}", None, ok=(200, 404))
        assert st == 200, f"a 201 registration {rid} is missing: {st} {js}"
    st, js, _, _ = c.retried("GET", f"/v1/organizations/{ld.t.org}/credits", None)
    assert st == 200, f"credits: {st}"
    # Counted in PostgreSQL itself: the source of truth, whatever the replicas say.
    count = int(pg_scalar(f"SELECT count(*) FROM registrations WHERE organization_id = '{ld.t.org}'"))
    assert count == len(ld.registered), f"{count} registrations saved, {len(ld.registered)} acknowledged"
    assert js["balance"] + count == ld.t.credits, \
        f"balance {js['balance']} + registrations {count} != credited {ld.t.credits}"


def check_board(ld, bound_s=10.0):
    """The board converges to the log: the speaker's score equals the acknowledged views, within bound_s."""
    c = Client()
    deadline = time.monotonic() + bound_s
    score = None
    while time.monotonic() < deadline:
        st, js = c.request("GET", f"/v1/events/{ld.t.event}/leaderboard/speakers/{ld.t.speaker}")
        score = js.get("score") if st == 200 and js else None
        if score == len(ld.views):
            return
        time.sleep(0.2)
    raise AssertionError(f"board {score} != log {len(ld.views)} after {bound_s}s")


def wait_balanced(timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        up = [ln for ln in lab("status", check=False).splitlines() if ln.startswith("# backend") and ln.endswith(" UP")]
        if len(up) == 6:
            return
        time.sleep(0.2)
    raise AssertionError("HAProxy does not see every replica up again")


# ---------------------------------------------------------------- scenarios

def replica_killed_under_load():
    """A replica killed (SIGKILL) under load: no GET fails (HAProxy retries safe methods); a POST
    fails at most while in flight on it, and with the client's retries and Idempotency-Keys
    constraint A is exact and the board equals the log."""
    ld = run_load(LOAD_S, at=lambda _: lab("kill", "svc2"))
    lab("restart", "svc2")
    wait_balanced()
    print("    " + ld.report())
    assert ld.reads.get(200, 0) > 0 and set(ld.reads) == {200}, f"a GET failed: {ld.reads}"
    assert set(ld.reg_final) <= {201}, f"a registration did not succeed after retries: {ld.reg_final}"
    assert set(ld.view_final) <= {200, 201}, f"a view did not succeed after retries: {ld.view_final}"
    check_constraint_a(ld)
    check_board(ld)


def rolling_restart():
    """A rolling restart (SIGTERM, restart, wait until HAProxy has it up, next): no request answered
    with a non-2xx, first attempts included -- the shutdown grace outlasts HAProxy's check interval.
    The one exception is HAProxy's on-marked-down shutdown-sessions: a request in flight on the
    draining replica at the instant the check marks it down is cut (no answer); the client's retry
    with its Idempotency-Key completes it, so constraint A stays exact. The cuts are counted."""
    def roll(_):
        for n in ("svc1", "svc2", "svc3"):
            lab("term", n)
            lab("restart", n)
            wait_balanced()
    t0 = time.monotonic()
    ld = run_load(LOAD_S, at=roll)
    print(f"    rolled 3 replicas in {time.monotonic() - t0:.1f}s; " + ld.report())
    assert set(ld.reads) == {200}, f"a GET failed: {ld.reads}"
    answered = {k: n for k, n in ld.fail_status.items() if k[1] != 0}
    assert not answered, f"first attempts answered with a non-2xx: {answered}"
    cuts = sum(n for k, n in ld.fail_status.items() if k[1] == 0)
    assert cuts <= 3 * 5, f"{cuts} requests cut: more than the 5 clients' in-flight ones per replica"
    assert set(ld.reg_final) <= {201} and set(ld.view_final) <= {200, 201}, "a write failed after retries"
    check_constraint_a(ld)
    check_board(ld)


SVC_LOGS = [os.path.join(ROOT, ".local", "cluster", f"svc{i}.log") for i in (1, 2, 3)]
SETTLE_S = 2.0  # four passes of every replica's worker (500 ms): a late second rebuild would show


def rebuilds_logged():
    """Rebuilds of every board the three replicas logged so far (store/leaderboard_sync.c)."""
    n = 0
    for p in SVC_LOGS:
        with open(p, errors="replace") as f:
            n += sum(1 for ln in f if "building every board" in ln)
    return n


def redis_emptied_under_load():
    """Redis emptied (FLUSHDB) under load with 3 replicas: the boards are rebuilt and equal the log,
    by ONE replica (the advisory-lock election of issue #14), not three; reports the score
    decreases readers saw while the board was rebuilt."""
    before = rebuilds_logged()
    ld = run_load(LOAD_S, at=lambda _: flush_lab_redis())
    check_board(ld, bound_s=15.0)
    time.sleep(SETTLE_S)
    rebuilt = rebuilds_logged() - before
    print(f"    replicas that rebuilt: {rebuilt}; " + ld.report())
    assert set(ld.reg_final) <= {201} and set(ld.view_final) <= {200, 201}, "a write failed after retries"
    assert rebuilt == 1, f"{rebuilt} replicas rebuilt every board (want one, elected)"


def redis_settled(timeout_s=60.0):
    """Wait until the Sentinels' primary has its replica linked again (the lab as it started), so a
    scenario leaves a lab the next one can fail over again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _, port = redis_primary()
            if "connected_slaves:1" in resp(port, "INFO", "replication"):
                return
        except (OSError, RuntimeError, AssertionError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"Redis has no linked replica {timeout_s:.0f}s after the scenario")


def redis_primary_killed():
    """The Redis primary killed under mixed load; Sentinel promotes the replica; the old primary
    returns (as a replica): every view 2xx (after retries), registrations unaffected, board = log."""
    node, _ = redis_primary()
    ld = run_load(max(LOAD_S, 12), at=lambda _: lab("kill", node))
    lab("restart", node)
    print("    " + ld.report())
    assert set(ld.view_final) <= {200, 201}, f"a view failed: {ld.view_final}"
    assert not ld.fail_times["registration"], "a registration failed while only Redis failed over"
    check_constraint_a(ld)
    check_board(ld, bound_s=20.0)
    redis_settled()


# A careful client retries a registration with its key until it gets a definite answer: longer than
# a PostgreSQL failover here (17.8 s measured, ADR 0014), or an abandoned 503 outcome-unknown could
# have committed and the count would differ from the 201s for a reason that is the client's.
PG_RETRY_S = 90.0
PG_TIMEOUT_S = 30.0   # long enough to measure a slow answer instead of cutting it
RUSH_CREDITS = 600


def pg_rush(at, bound_s=150.0):
    """A hot-organization rush (4 registrants on one organization with RUSH_CREDITS credits) that
    runs until every credit is spent or bound_s; at(load) is called once a third of the credits
    are spent, so the fault always lands in the middle of the rush. Returns the Load."""
    t = Tenant(credits=RUSH_CREDITS)
    ld = Load(t, readers=1, registrants=4, viewers=1, retry_s=PG_RETRY_S, timeout_s=PG_TIMEOUT_S)
    deadline = time.monotonic() + bound_s
    fired = False
    try:
        while time.monotonic() < deadline:
            with ld.lock:
                spent = len(ld.registered)
            if not fired and spent >= RUSH_CREDITS // 3:
                at(ld)
                fired = True
            if spent >= RUSH_CREDITS:
                break
            time.sleep(0.1)
    finally:
        ld.stop()
    assert fired, f"the rush never reached a third of its credits in {bound_s:.0f}s"
    return ld


def check_rush(ld):
    """The rush's invariants: no 500, every 201 present, exactly N registrations for N credits."""
    finals = {**ld.reg_final, **{("view", k): v for k, v in ld.view_final.items()}}
    assert 500 not in ld.reg_final and 500 not in ld.view_final, f"a 500: {finals}"
    assert not [k for k in ld.fail_status if k[1] == 500], f"a first attempt answered 500: {ld.fail_status}"
    check_constraint_a(ld)
    assert len(ld.registered) == ld.t.credits, \
        f"{len(ld.registered)} registrations acknowledged for {ld.t.credits} credits: the rush did not spend them"
    check_board(ld, bound_s=20.0)


def postgres_primary_killed():
    """The PostgreSQL primary killed during a hot-organization rush, with retries: every 201 present,
    exactly N registrations for N credits, no 500."""
    node, _ = pg_primary()
    ld = pg_rush(lambda _: lab("kill", node))
    lab("restart", node)
    print(f"    killed {node}; " + ld.report())
    check_rush(ld)
    pg_settled()


def pg_settled(timeout_s=120.0):
    """Wait until the PostgreSQL primary has a synchronous standby streaming again, so the next
    scenario starts from the formation lab.sh started (and a 201 means "on two nodes" again)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, port = pg_primary(timeout_s=max(1.0, deadline - time.monotonic()))
        r = subprocess.run(["psql", f"postgresql://postgres@127.0.0.1:{port}/postgres?connect_timeout=2", "-XtAc",
                            "SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')"],
                           capture_output=True, text=True, timeout=10)
        if r.returncode == 0 and r.stdout.strip() not in ("", "0"):
            return
        time.sleep(0.5)
    raise AssertionError(f"PostgreSQL has no synchronous standby {timeout_s:.0f}s after the scenario")


def replica_with_a_different_setting_refuses():
    """A fourth replica started with a different applied_retention_hours refuses to start (the value
    the running replicas recorded in cluster_settings wins), and the running ones keep serving."""
    binary = os.environ.get("ET_LAB_BINARY", os.path.join(ROOT, "build-test", "eventtrack"))
    env = dict(os.environ, EVENTTRACK_DATABASE_URL=os.environ["ET_LAB_DATABASE_URL"],
               EVENTTRACK_REDIS_URL=os.environ["ET_LAB_REDIS_URL"], EVENTTRACK_ADMIN_KEY=ADMIN)
    r = subprocess.run([binary, "serve", "--port", "0", "--applied-retention-hours", "1"], env=env,
                       capture_output=True, text=True, timeout=30)
    print(f"    exit {r.returncode}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}")
    assert r.returncode != 0, "a replica with a different applied_retention_hours started"
    assert "applied_retention_hours" in r.stderr, "the refusal does not name the setting"
    st, _ = Client().request("GET", "/readyz")
    assert st == 200, f"the running replicas stopped serving: /readyz {st}"


def served_by(server):
    """Responses HAProxy counted from one replica in the api backend (its CSV stats, column hrsp_2xx)."""
    conn = http.client.HTTPConnection(URL.hostname, URL.port + 1, timeout=5)
    conn.request("GET", "/;csv")
    rows = conn.getresponse().read().decode().splitlines()
    conn.close()
    head = rows[0].lstrip("# ").split(",")
    for row in rows[1:]:
        f = row.split(",")
        if f[0] == "api" and f[1] == server:
            return int(f[head.index("hrsp_2xx")] or 0)
    raise AssertionError(f"no api/{server} in HAProxy's stats")


def older_binary_during_rollout():
    """Expand/contract: a replica still running the release before the newest migration (built by
    tests/cluster/old-binary.sh) serves beside the new ones on the migrated schema: it starts, it
    answers its share, no request gets a non-2xx, constraint A is exact and the board equals the log."""
    old = subprocess.run([os.path.join(ROOT, "tests", "cluster", "old-binary.sh")], capture_output=True,
                         text=True, timeout=900)
    assert old.returncode == 0, f"cannot build the older binary: {old.stderr[-500:]}"
    old_path = old.stdout.strip()
    env = dict(os.environ, ET_LAB_BINARY=old_path)
    lab("term", "svc2")
    try:
        # Inside the try: whatever happens, svc2 runs the current binary again for the next scenario.
        r = subprocess.run([LAB, "restart", "svc2"], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"the older binary did not start on the migrated schema: {r.stderr.strip()}"
        wait_balanced()
        before = served_by("svc2")
        ld = run_load(LOAD_S)
        share = served_by("svc2") - before
        print(f"    older replica ({os.path.basename(os.path.dirname(os.path.dirname(old_path)))[:12]}) answered"
              f" {share} 2xx; " + ld.report())
        assert share > 0, "the older replica answered nothing"
        assert set(ld.reads) == {200}, f"a GET failed: {ld.reads}"
        assert not ld.fail_times["registration"] and not ld.fail_times["view"], \
            f"first attempts failed: {ld.fail_status}"
        check_constraint_a(ld)
        check_board(ld)
    finally:
        lab("term", "svc2")
        lab("restart", "svc2")
        wait_balanced()


# ---------------------------------------------------------------- HA-store scenarios (issue #17, J5)

def postgres_switchover():
    """A planned PostgreSQL switchover (pg_autoctl perform switchover) during a hot-organization rush:
    no 500, every 201 present, exactly N registrations for N credits, board = log."""
    before, _ = pg_primary()
    marks = {}

    def switch(_):
        marks["t0"] = time.monotonic()
        lab("switchover", "postgres")
        marks["took"] = time.monotonic() - marks["t0"]
    ld = pg_rush(switch)
    after, _ = pg_primary()
    print(f"    primary {before} -> {after}, switchover took {marks.get('took', 0):.1f}s; " + ld.report())
    assert after != before, f"the switchover left {before} primary"
    check_rush(ld)
    pg_settled()


def redis_switchover():
    """A planned Redis switchover (SENTINEL FAILOVER) under mixed load: no 500, every view and
    registration 2xx after retries (no registration even retried), board = log, one rebuild.
    Also measured: how long the replicas kept writing to the demoted primary, which answers ROLE
    master until Sentinel converts it (up to its 10 s INFO period); what they wrote there is
    discarded by the resync, and the new lineage's one elected rebuild repairs it."""
    before = redis_primary()
    rebuilds = rebuilds_logged()
    marks = {}

    def switch(_):
        resp(sentinel_ports()[0], "SENTINEL", "FAILOVER", "eventtrack")
        marks["t0"] = time.monotonic()
        deadline = marks["t0"] + 30
        while redis_primary()[1] == before[1] and time.monotonic() < deadline:
            time.sleep(0.1)
        marks["switched"] = time.monotonic() - marks["t0"]
    ld = run_load(max(LOAD_S, 12), at=switch)
    after = redis_primary()
    deadline = time.monotonic() + 30
    while resp(before[1], "ROLE")[0] == "master" and time.monotonic() < deadline:
        time.sleep(0.1)
    demoted = time.monotonic() - marks["t0"]
    check_board(ld, bound_s=20.0)
    time.sleep(SETTLE_S)
    rebuilt = rebuilds_logged() - rebuilds
    print(f"    primary {before[0]} -> {after[0]} after {marks['switched']:.1f}s; the old primary answered "
          f"ROLE master until {demoted:.1f}s; rebuilds {rebuilt}; " + ld.report())
    assert after != before, f"SENTINEL FAILOVER left {before[0]} primary"
    assert 500 not in ld.reads and not [k for k in ld.fail_status if k[1] == 500], f"a 500: {ld.fail_status}"
    assert set(ld.view_final) <= {200, 201} and set(ld.reg_final) <= {201}, "a write failed after retries"
    assert not ld.fail_times["registration"], "a registration failed while only Redis switched over"
    check_constraint_a(ld)
    assert rebuilt == 1, f"{rebuilt} replicas rebuilt every board (want one, elected)"
    redis_settled()


# The service's request_deadline_ms (default 5000) counts from when a request takes its
# connection; opening one is bounded by libpq's connect_timeout (3 s in the URL) per host tried,
# and a frozen node costs its full connect_timeout (ADR 0014). The longest answer a client may
# wait for is the sum, plus the slack of a 2-core machine shared with five other builds.
DEADLINE_S = 5.0
CONNECT_S = 3.0
SLACK_S = 2.0
HUNG_S = 12.0   # longer than pg_auto_failover's unhealthy (3 s) + demote (5 s) timeouts


def hung_postgres_primary():
    """The PostgreSQL primary hung (SIGSTOP of its process group and backends) during a rush: no
    client waits longer than the request deadline plus the connect budget (the longest attempt is
    printed), no 500; after SIGCONT (or the failover it caused) every 201 is present, exactly N
    registrations for N credits, board = log; board reads never need PostgreSQL."""
    node, _ = pg_primary()
    bound = DEADLINE_S + CONNECT_S * len(pg_nodes()) + SLACK_S
    marks = {}

    def hang(_):
        lab("pause", node)
        marks["paused"] = time.monotonic()
        time.sleep(HUNG_S)
        lab("resume", node)
    ld = pg_rush(hang)
    after, _ = pg_primary()
    print(f"    {node} paused {HUNG_S:.0f}s, primary after: {after}; bound {bound:.0f}s; " + ld.report())
    for kind, slowest in ld.slowest.items():
        assert slowest <= bound, f"a {kind} waited {slowest:.1f}s, beyond {bound:.0f}s"
    assert 0 not in ld.reads, f"a board read got no answer: {ld.reads}"
    check_rush(ld)
    pg_settled()


def sentinel_quorum_lost():
    """Sentinel quorum lost (2 of 3 Sentinels stopped, nothing else): no failover happens, ingest and
    registrations stay 2xx on the first attempt, board reads 2xx, and a replica restarted meanwhile
    finds the primary through the one Sentinel left. The restart's own cost is rolling_restart's: a
    request in flight on svc1 when HAProxy marks it down may be cut (no answer) and is completed by
    the client's retry; an answered non-2xx is a failure."""
    before = redis_primary()
    stopped = ("sentinel1", "sentinel2")
    last = sentinel_ports()[2:]

    def lose_quorum(_):
        for n in stopped:
            lab("kill", n)
        lab("term", "svc1")
        lab("restart", "svc1")
        time.sleep(4.0)  # past down-after-milliseconds (3 s): a failover would have started
    try:
        ld = run_load(max(LOAD_S, 12), at=lose_quorum)
        after = redis_primary(last)
        role = resp(before[1], "ROLE")[0]
    finally:
        for n in stopped:
            lab("restart", n)
    wait_balanced()
    print(f"    primary before {before[0]}, after {after[0]} (role {role}); " + ld.report())
    assert after == before and role == "master", f"a failover happened: {before} -> {after}, {role}"
    assert set(ld.reads) == {200}, f"a board read failed: {ld.reads}"
    answered = {k: n for k, n in ld.fail_status.items() if k[1] != 0}
    assert not answered, f"first attempts answered with a non-2xx: {answered}"
    cuts = sum(n for k, n in ld.fail_status.items() if k[1] == 0)
    assert cuts <= 5, f"{cuts} requests cut: more than the 5 clients' in-flight ones on svc1"
    assert set(ld.reg_final) <= {201} and set(ld.view_final) <= {200, 201}, "a write failed after retries"
    check_constraint_a(ld)
    check_board(ld)


def acknowledged_write_loss_across_processes():
    """Views acknowledged by replica A (svc1) and applied to the Redis primary, which is then killed
    before it replicated them; Sentinel promotes the replica that lacks them. Invariant: the boards of
    the OTHER replicas (svc2, svc3) and A's equal the log after convergence -- the promoted primary's
    new lineage makes one replica rebuild every board from PostgreSQL, which holds every view."""
    t = Tenant(credits=10)
    svc = [urlparse(f"http://127.0.0.1:{URL.port + k}") for k in (2, 3, 4)]
    a = Client(t.key, url=svc[0])
    acked = 0

    def views(n):
        nonlocal acked
        for _ in range(n):
            st, _, _, _ = a.retried("POST", "/v1/analytics/events", {
                "event_id": new_id("view"), "event_type": "session_view", "user_id": new_id("att"),
                "payload": {"session_id": t.session}})
            assert st in (200, 201), f"replica A refused a view: {st}"
            acked += 1

    def board(url):
        st, js = Client(url=url).request("GET", f"/v1/events/{t.event}/leaderboard/speakers/{t.speaker}")
        return js.get("score") if st == 200 and js else None

    def converge(urls, bound_s):
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            if all(board(u) == acked for u in urls):
                return True
            time.sleep(0.2)
        return False
    views(10)
    assert converge(svc[:1], 10.0), "the first views did not reach the board"
    primary, pport = redis_primary()
    replica = pport + (1 if primary == "redis1" else -1)
    rebuilds = rebuilds_logged()
    try:
        # Cut replication for good: the replica cannot authenticate any more (test_redis_failover.c).
        resp(replica, "CONFIG", "SET", "masterauth", "not-the-password")
        resp(pport, "CLIENT", "KILL", "TYPE", "replica")
        deadline = time.monotonic() + 10
        while "master_link_status:down" not in resp(replica, "INFO", "replication"):
            assert time.monotonic() < deadline, "the replica still follows the primary"
            time.sleep(0.05)
        views(10)
        assert converge(svc[:1], 10.0), "replica A did not apply its views on the primary"
        missed = offset(pport, "master_repl_offset") - offset(replica, "slave_repl_offset")
        assert missed > 0, "the replica got every write: nothing would be lost"
        t0 = time.monotonic()
        lab("kill", primary)
        while redis_primary()[1] == pport:
            assert time.monotonic() - t0 < 30, "Sentinel did not promote the replica within 30 s"
            time.sleep(0.1)
        promoted = time.monotonic() - t0
        ok = converge(svc, 20.0)
        took = time.monotonic() - t0 - promoted
        time.sleep(SETTLE_S)
        rebuilt = rebuilds_logged() - rebuilds
        print(f"    {acked} views acknowledged by svc1, {missed} bytes of replication lost; promoted after "
              f"{promoted:.1f}s; boards of svc1..3 {[board(u) for u in svc]} (log {acked}) "
              f"{took:.2f}s later; rebuilds {rebuilt}")
        assert ok, f"a board misses acknowledged views: {[board(u) for u in svc]} != {acked}"
        assert rebuilt == 1, f"{rebuilt} rebuilds after the promotion (want one, elected)"
    finally:
        resp(replica, "CONFIG", "SET", "masterauth", "")
        resp(replica, "CONFIG", "REWRITE")  # Sentinel rewrote the file with the wrong password
        lab("restart", primary, check=False)
    redis_settled()


def offset(port, field):
    """A replication offset from INFO replication (master_repl_offset, slave_repl_offset)."""
    for ln in resp(port, "INFO", "replication").splitlines():
        if ln.startswith(field + ":"):
            return int(ln.split(":", 1)[1])
    raise AssertionError(f"no {field} on port {port}")
BUDGET_LOCK_CLASS = 1163149623   # service/src/store/budget.c: the advisory lock class of the units


def replica_beyond_the_connection_budget():
    """A replica beyond the PostgreSQL connection budget gets 503s, the others none: a fourth replica
    (outside HAProxy) whose threads + 2 would fit the budget alone but not beside the three running
    ones is refused -- /readyz 503, 503 store-unavailable to what needs PostgreSQL -- while the load
    through HAProxy gets no failed first attempt; when it stops, the units it held (none) are unchanged."""
    binary = os.environ.get("ET_LAB_BINARY", os.path.join(ROOT, "build-test", "eventtrack"))
    budget = int(pg_scalar("SELECT current_setting('max_connections')::int"
                           " - current_setting('superuser_reserved_connections')::int - 10"))
    # This database's units only: advisory locks are per database, and another database on the same
    # server (a test suite's) may hold units of its own budget.
    held_sql = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                f" AND classid = {BUDGET_LOCK_CLASS} AND objsubid = 2"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
    held = int(pg_scalar(held_sql))
    threads = min(256, budget - held - 1)          # needs budget - held + 1: one unit too many
    assert held > 0 and threads > 0, f"the running replicas hold {held} of {budget} units"
    env = dict(os.environ, EVENTTRACK_DATABASE_URL=os.environ["ET_LAB_DATABASE_URL"],
               EVENTTRACK_REDIS_URL=os.environ["ET_LAB_REDIS_URL"], EVENTTRACK_ADMIN_KEY=ADMIN,
               EVENTTRACK_SHUTDOWN_GRACE_SECONDS="0")
    p = subprocess.Popen([binary, "serve", "--port", "0", "--threads", str(threads)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = p.stdout.readline()
        assert "listening on http://" in line, f"the fourth replica did not start: {line!r}"
        extra = urlparse(line.split("listening on ", 1)[1].strip())
        seen = {}

        def probe(_ld):
            deadline = time.monotonic() + LOAD_S / 2
            while time.monotonic() < deadline:
                for path in ("/readyz", f"/v1/organizations/{_ld.t.org}"):
                    conn = http.client.HTTPConnection(extra.hostname, extra.port, timeout=REQ_TIMEOUT_S)
                    conn.request("GET", path, headers={"Authorization": "Bearer " + ADMIN})
                    st = conn.getresponse().status
                    conn.close()
                    seen[(path.split("/")[1], st)] = seen.get((path.split("/")[1], st), 0) + 1
                time.sleep(0.1)

        ld = run_load(LOAD_S, at=probe)
        print(f"    budget {budget}, running replicas hold {held}, the fourth needs {threads + 2}:"
              f" it answered {seen}; " + ld.report())
        assert seen and all(st == 503 for (_, st) in seen), f"the replica beyond the budget answered {seen}"
        assert set(ld.reads) == {200}, f"a GET through HAProxy failed: {ld.reads}"
        assert not ld.fail_times["registration"] and not ld.fail_times["view"], \
            f"first attempts failed on the replicas within the budget: {ld.fail_status}"
        check_constraint_a(ld)
    finally:
        p.terminate()
        p.wait(timeout=30)
    assert int(pg_scalar(held_sql)) == held, "the units held changed after the fourth replica stopped"


def flush_lab_redis():
    """FLUSHDB on the lab's Redis primary: the one the Sentinels name with the HA stores."""
    url = os.environ["ET_LAB_REDIS_URL"]
    db = url.rstrip("/").rsplit("/", 1)[-1]
    port = redis_primary()[1] if url.startswith("redis-sentinel:") else urlparse(url).port
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "-n", db, "FLUSHDB"],
                   check=True, capture_output=True, timeout=10)


def readers_keeping_the_newest_version_never_go_back():
    """Readers alternating replicas through HAProxy, with Redis emptied and rebuilt under load: boards
    do arrive older than one already received (counted), but a reader that keeps the board with the
    highest version, as the widget does, never shows a lower score; and the rebuilt version is at least
    every version served before the loss."""
    t = Tenant(credits=100000)
    stop = threading.Event()
    lock = threading.Lock()
    stats = {"reads": 0, "older": 0, "shown_decreases": 0, "max_version": 0}

    def reader():
        c = Client()
        shown_version, shown_score = -1, -1
        while not stop.is_set():
            st, js = c.request("GET", f"/v1/events/{t.event}/leaderboard")
            if st != 200 or not js:
                continue
            board = js.get("leaderboard") or []
            version, score = js["version"], (board[0]["score"] if board else 0)
            with lock:
                stats["reads"] += 1
                stats["max_version"] = max(stats["max_version"], version)
                if version < shown_version:
                    stats["older"] += 1          # the widget ignores it
                    continue
                if score < shown_score:
                    stats["shown_decreases"] += 1
            shown_version, shown_score = version, score

    threads = [threading.Thread(target=reader, daemon=True) for _ in range(3)]
    for th in threads:
        th.start()
    seen_before = {}

    def flush(_):
        with lock:
            seen_before["max"] = stats["max_version"]
        flush_lab_redis()
    try:
        ld = run_load(LOAD_S, tenant=t, at=flush, readers=0)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=REQ_TIMEOUT_S + 1)
    check_board(ld, bound_s=15.0)
    # Through HAProxy a replica may answer from its 100 ms micro-cache, filled just before the board
    # converged: ask until the version is current, for a bounded time.
    deadline = time.monotonic() + 3.0
    while True:
        st, js = Client().request("GET", f"/v1/events/{t.event}/leaderboard")
        if (st == 200 and js["version"] == len(ld.views)) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    print(f"    {stats['reads']} reads; {stats['older']} boards older than one already received (ignored);"
          f" score decreases shown {stats['shown_decreases']}; highest version before the flush"
          f" {seen_before.get('max')}, after the rebuild {js and js.get('version')}; " + ld.report())
    assert stats["shown_decreases"] == 0, f"a reader keeping the newest version showed a lower score: {stats}"
    assert st == 200 and js["version"] >= seen_before.get("max", 0), \
        f"the rebuilt version {js and js.get('version')} is below {seen_before.get('max')}, served before the flush"
    assert js["version"] == len(ld.views), f"version {js['version']} != the {len(ld.views)} views logged"


SCENARIOS = [
    (replica_killed_under_load, None),
    (rolling_restart, None),
    (redis_emptied_under_load, None),
    (replica_with_a_different_setting_refuses, None),
    # The release before 0007 predates Sentinel URLs (issue 14): it cannot join the HA stores.
    (older_binary_during_rollout, "plain"),
    (replica_beyond_the_connection_budget, None),
    (readers_keeping_the_newest_version_never_go_back, None),
    (redis_primary_killed, "ha"),
    (postgres_primary_killed, "ha"),
    (postgres_switchover, "ha"),
    (redis_switchover, "ha"),
    (hung_postgres_primary, "ha"),
    (sentinel_quorum_lost, "ha"),
    (acknowledged_write_loss_across_processes, "ha"),
]


def main():
    only = sys.argv[1:]
    passed = failed = 0
    for fn, needs in SCENARIOS:
        if only and fn.__name__ not in only:
            continue
        first_doc_line = fn.__doc__.strip().splitlines()[0]
        if needs == "ha" and STORES != "ha":
            print(f"cluster: {fn.__name__}: skipped (needs ET_LAB_STORES=ha and a failover-following service)")
            continue
        if needs == "plain" and STORES != "plain":
            print(f"cluster: {fn.__name__}: skipped (needs ET_LAB_STORES=plain: the older binary predates"
                  " Sentinel URLs)")
            continue
        print(f"cluster: {fn.__name__}: {first_doc_line}", flush=True)
        t0 = time.monotonic()
        try:
            fn()
            passed += 1
            print(f"cluster: {fn.__name__}: passed ({time.monotonic() - t0:.1f}s)", flush=True)
        except Exception as e:  # one scenario's failure must not hide the others
            failed += 1
            print(f"cluster: {fn.__name__}: FAILED ({time.monotonic() - t0:.1f}s): {e}", flush=True)
            try:
                wait_balanced()
            except Exception:
                pass
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
