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

    def __init__(self, key=None):
        self.key = key
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        """(status, parsed body or None); status 0 on a connection error or timeout."""
        h = {"Content-Type": "application/json"} if body is not None else {}
        if self.key:
            h["Authorization"] = "Bearer " + self.key
        h.update(headers or {})
        data = json.dumps(body).encode() if body is not None else None
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(URL.hostname, URL.port, timeout=REQ_TIMEOUT_S)
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

    def retried(self, method, path, body, headers=None, ok=(200, 201)):
        """Retry a request that is safe to repeat until an answer that is not a 5xx/409-in-progress.
        Returns (final status, body, first status, attempts)."""
        deadline = time.monotonic() + RETRY_S
        first, attempts = None, 0
        while True:
            st, js = self.request(method, path, body, headers)
            attempts += 1
            first = st if first is None else first
            transient = st == 0 or st >= 500 or (st == 409 and js and "in-progress" in js.get("type", ""))
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

    def __init__(self, tenant, readers=2, registrants=2, viewers=1):
        self.t = tenant
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
        self.fail_status = {}    # (kind, status) of every failed first attempt -> count (0: no answer)
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

    def _reader(self):
        c, last = Client(), -1
        path = f"/v1/events/{self.t.event}/leaderboard"
        while not self.stop_flag.is_set():
            st, js = c.request("GET", path)
            with self.lock:
                self.reads[st] = self.reads.get(st, 0) + 1
            if st != 200:
                self._fail("read", st)
                continue
            board = js.get("leaderboard") or []
            score = board[0]["score"] if board else 0
            if score < last:
                with self.lock:
                    self.decreases += 1
            last = max(last, score)

    def _registrant(self):
        c = Client(self.t.key)
        while not self.stop_flag.is_set():
            user = new_id("usr")
            body = {"session_id": self.t.session, "user_id": user, "organization_id": self.t.org,
                    "ticket_type": "standard", "price_paid": "10.00"}
            st, js, first, _ = c.retried("POST", "/v1/registrations", body,
                                         {"Idempotency-Key": new_id("idem")})
            if first not in (201, 402):
                self._fail("registration", first)
            with self.lock:
                self.reg_final[st] = self.reg_final.get(st, 0) + 1
                if st == 201:
                    self.registered[js["id"]] = user

    def _viewer(self):
        c = Client(self.t.key)
        while not self.stop_flag.is_set():
            eid = new_id("view")
            body = {"event_id": eid, "event_type": "session_view", "user_id": new_id("att"),
                    "payload": {"session_id": self.t.session}}
            st, _, first, _ = c.retried("POST", "/v1/analytics/events", body)
            if first not in (200, 201):
                self._fail("view", first)
            with self.lock:
                self.view_final[st] = self.view_final.get(st, 0) + 1
                if st in (200, 201):
                    self.views.add(eid)

    def stop(self):
        self.stop_flag.set()
        for th in self.threads:
            th.join(timeout=RETRY_S + REQ_TIMEOUT_S + 5)

    def window(self, kind):
        """The outage window of one kind: first to last failed first attempt, in seconds."""
        t = self.fail_times[kind]
        return (max(t) - min(t)) if t else 0.0

    def report(self):
        return (f"reads {dict(sorted(self.reads.items()))}; registrations {dict(sorted(self.reg_final.items()))}"
                f" ({len(self.fail_times['registration'])} first attempts failed, window "
                f"{self.window('registration'):.2f}s); views {dict(sorted(self.view_final.items()))} "
                f"({len(self.fail_times['view'])} first attempts failed, window {self.window('view'):.2f}s); "
                f"read failures {len(self.fail_times['read'])} (window {self.window('read'):.2f}s); "
                f"failed first attempts by status {self.fail_status}; score decreases seen by readers "
                f"{self.decreases}")


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


def redis_emptied_under_load():
    """Redis emptied (FLUSHDB) under load with 3 replicas: the boards are rebuilt and equal the log;
    reports how many replicas rebuilt (the goal is one: issue #14 elects one rebuilder) and how
    many score decreases readers saw."""
    logs = [os.path.join(ROOT, ".local", "cluster", f"svc{i}.log") for i in (1, 2, 3)]

    def rebuild_lines():
        n = 0
        for p in logs:
            with open(p, errors="replace") as f:
                n += sum(1 for ln in f if "building every board" in ln)
        return n
    before = rebuild_lines()

    def flush(_):
        url = os.environ["ET_LAB_REDIS_URL"]
        db = url.rstrip("/").rsplit("/", 1)[-1]
        if url.startswith("redis-sentinel:"):
            # The primary's port: the ha script's `nodes` line of the node whose role is master.
            master = ha_node(("master",), "redis")
            port = next(ln.split()[3] for ln in lab("status", check=False).splitlines() if ln.startswith(master + " "))
        else:
            port = str(urlparse(url).port)
        subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", port, "-n", db, "FLUSHDB"],
                       check=True, capture_output=True, timeout=10)
    ld = run_load(LOAD_S, at=flush)
    rebuilt = rebuild_lines() - before
    print(f"    replicas that rebuilt: {rebuilt}; " + ld.report())
    assert set(ld.reg_final) <= {201} and set(ld.view_final) <= {200, 201}, "a write failed after retries"
    check_board(ld, bound_s=15.0)
    assert rebuilt >= 1, "no replica noticed that Redis was emptied"


def ha_node(script_nodes_role, kind):
    """The name of the node whose ROLE is one of script_nodes_role in `lab.sh status` store lines."""
    for ln in lab("status", check=False).splitlines():
        parts = ln.split()
        if len(parts) == 4 and parts[1] in script_nodes_role and parts[0].startswith(kind):
            return parts[0]
    raise AssertionError(f"no {kind} node with role {script_nodes_role}")


def redis_primary_killed():
    """The Redis primary killed under mixed load; Sentinel promotes the replica; the old primary
    returns (as a replica): every view 2xx (after retries), registrations unaffected, board = log."""
    node = ha_node(("master",), "redis")
    ld = run_load(max(LOAD_S, 12), at=lambda _: lab("kill", node))
    lab("restart", node)
    print("    " + ld.report())
    assert set(ld.view_final) <= {200, 201}, f"a view failed: {ld.view_final}"
    assert not ld.fail_times["registration"], "a registration failed while only Redis failed over"
    check_constraint_a(ld)
    check_board(ld, bound_s=20.0)


def postgres_primary_killed():
    """The PostgreSQL primary killed during a hot-organization rush, with retries: every 201 present,
    exactly N registrations for N credits, no 500."""
    node = ha_node(("primary", "wait_primary", "single"), "")
    t = Tenant(credits=200)
    ld = run_load(max(LOAD_S, 20), tenant=t, at=lambda _: lab("kill", node), registrants=4, viewers=0)
    print("    " + ld.report())
    assert 500 not in ld.reg_final, f"a 500: {ld.reg_final}"
    check_constraint_a(ld)


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
    r = subprocess.run([LAB, "restart", "svc2"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"the older binary did not start on the migrated schema: {r.stderr.strip()}"
    try:
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


BUDGET_LOCK_CLASS = 1163149623   # service/src/store/budget.c: the advisory lock class of the units


def replica_beyond_the_connection_budget():
    """A replica beyond the PostgreSQL connection budget gets 503s, the others none: a fourth replica
    (outside HAProxy) whose threads + 2 would fit the budget alone but not beside the three running
    ones is refused -- /readyz 503, 503 store-unavailable to what needs PostgreSQL -- while the load
    through HAProxy gets no failed first attempt; when it stops, the units it held (none) are unchanged."""
    binary = os.environ.get("ET_LAB_BINARY", os.path.join(ROOT, "build-test", "eventtrack"))
    budget = int(pg_scalar("SELECT current_setting('max_connections')::int"
                           " - current_setting('superuser_reserved_connections')::int - 10"))
    held_sql = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                f" AND classid = {BUDGET_LOCK_CLASS} AND objsubid = 2")
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
    """FLUSHDB on the lab's Redis primary (as redis_emptied_under_load does)."""
    url = os.environ["ET_LAB_REDIS_URL"]
    db = url.rstrip("/").rsplit("/", 1)[-1]
    if url.startswith("redis-sentinel:"):
        master = ha_node(("master",), "redis")
        port = next(ln.split()[3] for ln in lab("status", check=False).splitlines() if ln.startswith(master + " "))
    else:
        port = str(urlparse(url).port)
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", port, "-n", db, "FLUSHDB"],
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
    st, js = Client().request("GET", f"/v1/events/{t.event}/leaderboard")
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
    (older_binary_during_rollout, None),
    (replica_beyond_the_connection_budget, None),
    (readers_keeping_the_newest_version_never_go_back, None),
    (redis_primary_killed, "ha"),
    (postgres_primary_killed, "ha"),
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
