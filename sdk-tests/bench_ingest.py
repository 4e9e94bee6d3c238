"""How fast history gets into herald through the real `wandb` SDK, next to its REST endpoint.

Run it with `.ci/bench-sdk` (which makes target/wandb-venv and the release build first), or by
hand: `target/wandb-venv/bin/python sdk-tests/bench_ingest.py [--rows N] [--backend postgres]`.
It prints figures and asserts nothing about them: a benchmark, not a test (pytest does not
collect this file).

It starts `herald serve` (target/release/herald, or HERALD_BIN) on a free loopback port with a
temporary data directory, on SQLite, or with `--backend postgres` on a fresh schema of the
database HERALD_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test), dropped at the
end. It seeds a user `trainer`, ADMIN of team `bench`, and project bench/ingest over REST. Then:

1. SDK, as fast as it can: a training script (a Python process of its own, with only
   WANDB_BASE_URL and WANDB_API_KEY pointing it at herald) logs N rows of 10 metrics with
   `wandb.log` in a bare loop, then `run.finish()`. Figures: the loop's rows/s, and end to end
   N / (time from the first `wandb.log` until herald has stored all N rows), watched by paging
   the run's REST history every 50 ms. The same loop with `mode="offline"` shows what the loop
   costs with no server at all.
2. REST: the same N rows posted to `POST …/runs/{run}/history` as a reasonable client would:
   batches as large as herald takes (10,000 rows, and the server's 1 MiB body limit), encoded
   before the clock starts, over 2 keep-alive connections (`--rest-connections`); a batch is
   stored when its answer arrives. Best and median of 3 rounds, each into a fresh run. Then
   herald's file_stream alone: the same rows posted straight to it in one post, as wandb-core
   writes them (with `_step`, `_runtime`, `_timestamp`), with no SDK in between.
3. Paced: a script logging 10 metrics every 100 ms for 20 s (`--paced-seconds`), with herald
   as its server and then offline. Figures: each `wandb.log` call's time (median, p99, max),
   how late a call started against its slot at most, and the loop's overrun: its time less the
   ideal (calls − 1) × 100 ms.

Where the time goes: herald's CPU time (from /proc) and the script's with its wandb-core
service (its own rusage after `wandb.teardown()`) in each SDK phase; from herald's log (the
`herald_api` response lines) how many requests of each kind the SDK sent, and herald's time
on each file_stream post, from its headers to the answer (receiving the body included); from
the LOG_RUN_HISTORY events how many rows each post carried.

Everything runs on loopback and is removed at exit, Ctrl-C and SIGTERM included: the server,
the scripts and their wandb-core services, the schema, the temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from herald_process import HeraldProcess, PgSchema
from herald_sdk import ADMIN_KEY, Rest, history, isolate_wandb, script_env

REPO = Path(__file__).resolve().parent.parent
ENTITY, PROJECT = "bench", "ingest"
METRICS = 10
MAX_BATCH_ROWS = 10_000  # herald's MAX_HISTORY_ROWS
MAX_BODY_BYTES = 1024 * 1024  # herald's body limit on REST
SCRIPT_TIMEOUT = 240  # seconds any one script may take before it is killed
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------------------------
# The training scripts. Each prints one line `BENCH {json}` last; times are time.monotonic(),
# the same clock in every process of the machine.

_COMMON = """
import json, resource, sys, time
import wandb

def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime

def report(run, **figures):
    t = time.monotonic()
    run.finish()
    figures["finish_s"] = time.monotonic() - t
    # The service (wandb-core) exits and is waited for: its CPU time counts as our children's.
    wandb.teardown()
    figures.update(script_cpu_s=cpu(resource.RUSAGE_SELF), service_cpu_s=cpu(resource.RUSAGE_CHILDREN))
    print("BENCH " + json.dumps(figures), flush=True)

n, mode, run_id = int(sys.argv[1]), sys.argv[2], sys.argv[3]
keys = [f"m{i}" for i in range(10)]
t = time.monotonic()
run = wandb.init(entity="bench", project="ingest", id=run_id, mode=mode)
init_s = time.monotonic() - t
"""

FAST = _COMMON + """
cpu0 = cpu(resource.RUSAGE_SELF)
first = time.monotonic()
for step in range(n):
    wandb.log({k: step + i / 10 for i, k in enumerate(keys)})
last = time.monotonic()
report(run, init_s=init_s, first_log=first, loop_end=last, loop_cpu_s=cpu(resource.RUSAGE_SELF) - cpu0)
"""

PACED = _COMMON + """
interval = float(sys.argv[4])
calls, late = [], []
start = time.monotonic()
for step in range(n):
    slot = start + step * interval
    wait = slot - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    a = time.monotonic()
    wandb.log({k: step + i / 10 for i, k in enumerate(keys)})
    b = time.monotonic()
    late.append(a - slot)
    calls.append(b - a)
report(run, init_s=init_s, first_log=start, loop_end=time.monotonic(), calls=calls, late=late,
       logged_at=[start + i * interval + late[i] + calls[i] for i in range(n)])
"""


# ---------------------------------------------------------------------------------------------
# Processes: the scripts run in sessions of their own; wandb-core starts a session of its own
# too (it exits when its parent does, but the cleanup does not count on that).


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _kill_tree(pid: int) -> None:
    doomed = [pid]
    i = 0
    while i < len(doomed):
        doomed += _children(doomed[i])
        i += 1
    for p in doomed:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_script(body: str, args: list, env: dict) -> dict:
    """Runs a training script; returns its BENCH figures."""
    out_path = Path(env["WANDB_DIR"]) / f"script-{time.monotonic_ns()}.out"
    with open(out_path, "w+") as out:
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(body), *map(str, args)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        timer = threading.Timer(SCRIPT_TIMEOUT, _kill_tree, (proc.pid,))
        timer.start()
        try:
            _, status, _ = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C, SIGTERM: the script and its service go too
            _kill_tree(proc.pid)
            proc.wait()
            raise
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    lines = [line for line in text.splitlines() if line.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the training script exited with {proc.returncode}:\n{text[-4000:]}")
    return json.loads(lines[-1][len("BENCH "):])


# ---------------------------------------------------------------------------------------------
# Watching a run's history over REST


class HistoryWatch(threading.Thread):
    """Pages a run's REST history from where it left off, every `every` seconds (at once while
    pages come back full), until `expected` rows are there; records when each poll saw how
    many rows."""

    def __init__(self, url: str, key: str, run: str, expected: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.path = f"{url}/api/v1/entities/{ENTITY}/projects/{PROJECT}/runs/{run}/history"
        self.key, self.expected, self.every = key, expected, every
        self.seen: list[tuple[float, int]] = []  # (time, rows stored by then)
        self.done_at: float | None = None
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self):
        try:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self.key}"
            after, count = "", 0
            while not self._halt.is_set():
                r = session.get(self.path, params={"limit": 1000, "after": after}, timeout=15)
                now = time.monotonic()
                if r.status_code == 404:  # the run is not there yet
                    self._halt.wait(self.every)
                    continue
                r.raise_for_status()
                rows = r.json()["rows"]
                if rows:
                    count += len(rows)
                    after = str(rows[-1]["seq"])
                    self.seen.append((now, count))
                if count >= self.expected:
                    self.done_at = now
                    return
                if len(rows) < 1000:
                    self._halt.wait(self.every)
        except BaseException as e:  # reported by wait()
            self.error = e

    def wait(self, timeout: float) -> float:
        """When all rows were stored; raises if they were not within `timeout` seconds."""
        self.join(timeout)
        self._halt.set()
        if self.error:
            raise RuntimeError(f"watching the history failed: {self.error}")
        if self.done_at is None:
            got = self.seen[-1][1] if self.seen else 0
            raise RuntimeError(f"herald had {got} of {self.expected} rows after {timeout} s")
        return self.done_at

    def stored_by(self, row: int) -> float:
        """When the poll that first saw row `row` (0-based) answered."""
        return next(t for t, count in self.seen if count > row)


# ---------------------------------------------------------------------------------------------
# herald's own account of a run: its log and its events


@dataclass
class Request:
    method: str
    uri: str
    latency_us: int


def requests_since(log_path: Path, offset: int) -> list[Request]:
    """The requests herald answered after byte `offset` of its log, from its `herald_api`
    response lines (method, path, herald's time on each)."""
    with open(log_path, "rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    out = []
    for line in text.splitlines():
        if "latency_us" not in line:
            continue
        try:
            entry = json.loads(line)
            span = entry["span"]
            out.append(Request(span["method"], span["uri"], int(entry["fields"]["latency_us"])))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def kinds(reqs: list[Request]) -> str:
    """`9 GraphQL, 2 file_stream, 8 file uploads, 70 history polls`."""
    def kind(r: Request) -> str:
        if r.uri.endswith("/file_stream"):
            return "file_stream"
        if r.uri.startswith("/graphql"):
            return "GraphQL"
        if r.uri.startswith("/storage"):
            return "file uploads"
        if r.method == "GET" and r.uri.endswith("/history"):
            return "history polls"
        return "other"

    counts: dict[str, int] = {}
    for r in reqs:
        counts[kind(r)] = counts.get(kind(r), 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def rows_per_post(rest: Rest, run: str) -> list[int]:
    """The rows of each LOG_RUN_HISTORY event of `run`: one per file_stream post with history."""
    rows, after = [], ""
    while True:
        page = rest.get(f"/entities/{ENTITY}/events?limit=1000&after={after}")
        rows += [e["body"]["rows"] for e in page["events"] if e["run"] == run and e["type"] == "LOG_RUN_HISTORY"]
        if not page["next_cursor"]:
            return rows
        after = page["next_cursor"]


# ---------------------------------------------------------------------------------------------
# The phases


@dataclass
class Bench:
    server: HeraldProcess
    key: str
    rows: int
    rest_connections: int
    paced_seconds: float
    interval: float
    env: dict
    figures: dict = field(default_factory=dict)
    runs: int = 0

    def rest(self) -> Rest:
        return self.server.rest(self.key)

    def new_run(self) -> str:
        self.runs += 1
        return f"bench-{self.runs}"

    def sdk(self, body: str, n: int, mode: str, *extra) -> tuple[dict, dict]:
        """Runs a script logging `n` rows; online, watches the rows arrive. Returns the script's
        figures and herald's side: CPU time, when all rows were stored, the watch, the posts."""
        run = self.new_run()
        herald = {}
        watch = None
        if mode == "online":
            watch = HistoryWatch(self.server.url, self.key, run, n)
            watch.start()
        log_offset = self.server.log_path.stat().st_size
        cpu = cpu_seconds(self.server.proc.pid)
        got = run_script(body, [n, mode, run, *extra], self.env)
        if watch:
            herald["stored_at"] = watch.wait(timeout=60)
            herald["watch"] = watch
        herald["cpu_s"] = cpu_seconds(self.server.proc.pid) - cpu
        if watch:
            herald["requests"] = requests_since(self.server.log_path, log_offset)
            herald["posts_us"] = [r.latency_us for r in herald["requests"] if r.uri.endswith(f"/{run}/file_stream")]
            herald["rows_per_post"] = rows_per_post(self.rest(), run)
        return got, herald

    def fast(self, mode: str) -> None:
        print(f"  wandb.log as fast as it can, {mode}: {self.rows:,} rows …", file=sys.stderr, flush=True)
        got, herald = self.sdk(FAST, self.rows, mode)
        self.figures[f"fast_{mode}"] = (got, herald)

    def paced(self, mode: str) -> None:
        n = int(self.paced_seconds / self.interval)
        print(f"  wandb.log every {self.interval * 1000:.0f} ms, {mode}: {n} calls …", file=sys.stderr, flush=True)
        got, herald = self.sdk(PACED, n, mode, self.interval)
        self.figures[f"paced_{mode}"] = (got, herald)

    def rest_rounds(self, rounds: int = 3) -> None:
        print(f"  REST history, {self.rest_connections} connections: {rounds} × {self.rows:,} rows …",
              file=sys.stderr, flush=True)
        bodies = batches(self.rows)
        results = [self.post_round(bodies, "history", self.rest_connections) for _ in range(rounds)]
        self.figures["rest"] = (results, [b.count(b'"step"') for b in bodies])

    def file_stream_rounds(self, rounds: int = 3) -> None:
        print(f"  file_stream posted directly: {rounds} × {self.rows:,} rows in one post …", file=sys.stderr, flush=True)
        body = file_stream_body(self.rows)
        self.figures["file_stream"] = [self.post_round([body], "file_stream", 1) for _ in range(rounds)]

    def post_round(self, bodies: list[bytes], to: str, connections: int) -> dict:
        """Posts `bodies` into a fresh run (`history`: its REST history; `file_stream`: its
        file_stream, as the SDK posts, in order) over `connections` keep-alive connections; a
        batch is stored when its answer arrives. Checks all rows are there, then finishes
        the run."""
        run = self.new_run()
        rest = self.rest()
        rest.post(f"/entities/{ENTITY}/projects/{PROJECT}/runs", {"id": run}, expect=201)
        path = (f"{self.server.url}/api/v1/entities/{ENTITY}/projects/{PROJECT}/runs/{run}/history" if to == "history"
                else f"{self.server.url}/files/{ENTITY}/{PROJECT}/{run}/file_stream")
        sessions = []
        for _ in range(connections):
            s = requests.Session()
            s.headers.update({"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
            s.get(f"{self.server.url}/healthz", timeout=15)  # the connection is open before the clock starts
            sessions.append(s)
        todo = list(reversed(bodies))
        lock = threading.Lock()
        errors = []

        def client(session):
            while True:
                with lock:
                    if not todo or errors:
                        return
                    body = todo.pop()
                r = session.post(path, data=body, timeout=60)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:500]}")

        threads = [threading.Thread(target=client, args=(s,)) for s in sessions]
        cpu = cpu_seconds(self.server.proc.pid)
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - start
        cpu = cpu_seconds(self.server.proc.pid) - cpu
        if errors:
            raise RuntimeError(f"herald refused a {to} post: {errors[0]}")
        stored = len(history(rest, f"/entities/{ENTITY}/projects/{PROJECT}/runs/{run}"))
        if stored != self.rows:
            raise RuntimeError(f"herald stored {stored} of {self.rows} rows posted to {to}")
        rest.patch(f"/entities/{ENTITY}/projects/{PROJECT}/runs/{run}", {"state": "FINISHED"}, expect=200)
        return {"seconds": took, "cpu_s": cpu}


def row_values(step: int) -> dict[str, float]:
    """What the scripts log at `step`."""
    return {f"m{i}": step + i / 10 for i in range(METRICS)}


def file_stream_body(n: int) -> bytes:
    """The N rows as one file_stream post, each line as wandb-core writes it (with the SDK's
    `_step`, `_runtime` and `_timestamp`)."""
    t0 = time.time()
    lines = [json.dumps({**row_values(step), "_step": step, "_runtime": step * 0.0005, "_timestamp": t0 + step * 0.0005})
             for step in range(n)]
    return json.dumps({"files": {"wandb-history.jsonl": {"offset": 0, "content": lines}}}).encode()


def batches(n: int) -> list[bytes]:
    """The N rows the scripts log, as REST bodies of up to MAX_BATCH_ROWS rows and
    MAX_BODY_BYTES bytes each."""
    out, rows, size = [], [], len(b'{"rows":[]}')
    for step in range(n):
        row = json.dumps({"step": step, "values": row_values(step)}, separators=(",", ":"))
        if rows and (len(rows) == MAX_BATCH_ROWS or size + len(row) + 1 > MAX_BODY_BYTES):
            out.append(('{"rows":[' + ",".join(rows) + "]}").encode())
            rows, size = [], len(b'{"rows":[]}')
        rows.append(row)
        size += len(row) + 1
    out.append(('{"rows":[' + ",".join(rows) + "]}").encode())
    return out


# ---------------------------------------------------------------------------------------------
# The report


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "-"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(b: Bench, backend: str) -> str:
    n = b.rows
    f = b.figures
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    out = [f"herald SDK ingestion benchmark: {backend}, {n:,} rows × {METRICS} metrics, "
           f"{os.cpu_count()} CPUs (load {load} at the end), wandb {wandb_version()}", ""]

    rows = [["ingestion", "rows/s", "values/s", "seconds"]]
    for mode in ("online", "offline"):
        got, _ = f[f"fast_{mode}"]
        loop = got["loop_end"] - got["first_log"]
        rows.append([f"wandb.log loop, {'herald' if mode == 'online' else 'offline'}", rate(n, loop),
                     rate(n * METRICS, loop), f"{loop:.2f}"])
    got, herald = f["fast_online"]
    e2e = herald["stored_at"] - got["first_log"]
    rows.append(["SDK end to end: first wandb.log → all stored", rate(n, e2e), rate(n * METRICS, e2e), f"{e2e:.2f}"])
    results, per_batch = f["rest"]
    for name, rounds in ((f"REST history, {b.rest_connections} connections", results),
                         ("file_stream posted directly, 1 post", f["file_stream"])):
        secs = sorted(r["seconds"] for r in rounds)
        med = statistics.median(secs)
        rows.append([f"{name}, best of {len(secs)}", rate(n, secs[0]), rate(n * METRICS, secs[0]), f"{secs[0]:.2f}"])
        rows.append([f"{name}, median", rate(n, med), rate(n * METRICS, med), f"{med:.2f}"])
    out += [table(rows), ""]

    posts_us, per_post = herald["posts_us"], herald["rows_per_post"]
    rest_cpu = statistics.median(r["cpu_s"] for r in results)
    direct_cpu = statistics.median(r["cpu_s"] for r in f["file_stream"])
    off, _ = f["fast_offline"]
    out += [
        "where the time goes (SDK, as fast as it can, with herald):",
        f"  script: init {got['init_s']:.2f} s, loop {got['loop_end'] - got['first_log']:.2f} s "
        f"(the script's CPU meanwhile {got['loop_cpu_s']:.2f} s), finish {got['finish_s']:.2f} s; "
        f"all stored {herald['stored_at'] - got['loop_end']:.2f} s after the loop",
        f"  CPU: script {got['script_cpu_s']:.2f} s, its wandb-core {got['service_cpu_s']:.2f} s "
        f"(offline: {off['script_cpu_s']:.2f} s, {off['service_cpu_s']:.2f} s), herald {herald['cpu_s']:.2f} s, "
        f"the benchmark's polls included (the same rows over REST: {rest_cpu:.2f} s; posted to file_stream "
        f"directly: {direct_cpu:.2f} s)",
        f"  file_stream posts: {len(posts_us)}, herald's time on them {sum(posts_us) / 1e6:.2f} s "
        f"(longest {max(posts_us, default=0) / 1e3:.0f} ms); rows per post with history: {spread(per_post)}",
        f"  requests to herald: {kinds(herald['requests'])}",
        f"  REST batches: {len(per_batch)} of {spread(per_batch)} rows (≤ {MAX_BATCH_ROWS:,} rows, ≤ 1 MiB)",
        "",
    ]

    rows = [[f"paced: {METRICS} metrics every {b.interval * 1000:.0f} ms", "calls", "median", "p99", "max",
             "late start, max", "overrun"]]
    for mode in ("online", "offline"):
        got, _ = f[f"paced_{mode}"]
        calls = got["calls"]
        overrun = got["loop_end"] - got["first_log"] - (len(calls) - 1) * b.interval
        rows.append([f"wandb.log, {'herald' if mode == 'online' else 'offline'}", str(len(calls)),
                     ms(statistics.median(calls)), ms(pct(calls, 99)), ms(max(calls)), ms(max(got["late"])),
                     ms(overrun)])
    out += [table(rows)]
    got, herald = f["paced_online"]
    off, _ = f["paced_offline"]
    watch = herald["watch"]
    lag = [watch.stored_by(i) - t for i, t in enumerate(got["logged_at"])]
    out += [
        f"  with herald: init {got['init_s']:.2f} s (offline {off['init_s']:.2f} s), finish "
        f"{got['finish_s']:.2f} s (offline {off['finish_s']:.2f} s); a row was stored "
        f"{statistics.median(lag):.1f} s after its wandb.log (median), {max(lag):.1f} s at most; "
        f"file_stream posts: {len(herald['posts_us'])}, rows per post with history: {spread(herald['rows_per_post'])}",
    ]
    return "\n".join(out)


def spread(values: list[int]) -> str:
    if not values:
        return "-"
    if len(values) <= 6:
        return ", ".join(f"{v:,}" for v in values)
    return f"{min(values):,} to {max(values):,} (median {statistics.median(values):,.0f})"


def wandb_version() -> str:
    from importlib.metadata import version

    return version("wandb")


# ---------------------------------------------------------------------------------------------
# Main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Run through .ci/bench-sdk, which makes target/wandb-venv (the SDK pinned in "
                                       "sdk-tests/requirements.txt) and the release build first.")
    p.add_argument("--rows", type=int, default=20_000, help="rows logged as fast as possible (default 20000)")
    p.add_argument("--backend", choices=("sqlite", "postgres"), default=os.environ.get("HERALD_BENCH_BACKEND", "sqlite"),
                   help="herald's database (default sqlite, or HERALD_BENCH_BACKEND); postgres: a fresh schema "
                        "in HERALD_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test)")
    p.add_argument("--rest-connections", type=int, default=2, help="concurrent REST clients (default 2)")
    p.add_argument("--paced-seconds", type=float, default=20, help="length of the paced runs (default 20)")
    p.add_argument("--keep-log", type=Path, help="copy herald's log into this directory at the end")
    a = p.parse_args()
    binary = Path(os.environ.get("HERALD_BIN", REPO / "target" / "release" / "herald"))
    if not binary.is_file():
        p.error(f"{binary} is missing: build it with `cargo build --release -p herald --locked`")

    def on_sigterm(*_):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)
    tmp = Path(tempfile.mkdtemp(prefix="herald-sdk-bench-"))
    real_home = os.environ.get("HOME", "/")
    pg_base = os.environ.get("HERALD_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
    schema = PgSchema(pg_base, f"herald_bench_sdk_{os.getpid()}", home=real_home) if a.backend == "postgres" else None
    server = None
    try:
        isolate_wandb(tmp)
        if schema:
            schema.create()
        print(f"herald serve ({binary}, {a.backend}) …", file=sys.stderr, flush=True)
        server = HeraldProcess.new(
            binary, tmp / "herald-data", tmp / "herald.log", schema.url if schema else None,
            HOME=real_home,
            HERALD_BOOTSTRAP_API_KEY=ADMIN_KEY,
            # A line per request with herald's time on it, for the count of file_stream posts.
            HERALD_LOG="warn,herald_api=debug",
            HERALD_LOG_FORMAT="json",
        )
        server.start()
        admin = server.rest(ADMIN_KEY)
        key = admin.post("/users", {"username": "trainer", "email": "trainer@example.com"}, expect=201)["api_key"]
        admin.post("/entities", {"name": ENTITY, "kind": "team"}, expect=201)
        admin.put(f"/entities/{ENTITY}/members/trainer", {"role": "ADMIN"}, expect=200)
        admin.post(f"/entities/{ENTITY}/projects", {"name": PROJECT}, expect=201)
        bench = Bench(server=server, key=key, rows=a.rows, rest_connections=a.rest_connections,
                      paced_seconds=a.paced_seconds, interval=0.1, env=script_env(server.url, key))
        bench.fast("online")
        bench.fast("offline")
        bench.rest_rounds()
        bench.file_stream_rounds()
        bench.paced("online")
        bench.paced("offline")
        print(file=sys.stderr)
        print(report(bench, a.backend))
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if server:
            server.stop()
            if a.keep_log and server.log_path.exists():
                a.keep_log.mkdir(parents=True, exist_ok=True)
                shutil.copy(server.log_path, a.keep_log / f"herald-bench-{a.backend}.log")
        if schema:
            try:
                schema.drop()
            except (subprocess.SubprocessError, OSError) as e:
                print(f"could not drop {schema.name}: {e}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
