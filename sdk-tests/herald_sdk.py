"""What the SDK tests (and the SDK benchmark, bench_ingest.py) share besides fixtures: the SDK's
isolated environment, training scripts' environment, herald's REST client, the webhook receiver,
the recording proxy between the SDK and herald, global ids and bounded waits."""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

# herald's bootstrap admin (HERALD_BOOTSTRAP_API_KEY) in every server the suite and the SDK
# benchmark start.
ADMIN_KEY = "sdk_tests_admin_key_0123456789_0123456789"  # the SDK wants 40+ [A-Za-z0-9_]

# The seeded Slack integrations (conftest.py).
SLACK_CHANNEL = "#ml-alerts"
SLACK_WORKSPACE = "acme-workspace"
ORG_SLACK_CHANNEL = "#registry"


# ---------------------------------------------------------------------------------------------
# Waiting


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 20.0, every: float = 0.1):
    """Calls `probe` until it returns something truthy and returns that; fails after `timeout`
    seconds naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
        time.sleep(every)


# ---------------------------------------------------------------------------------------------
# The SDK's environment and training scripts


def isolate_wandb(tmp: Path) -> None:
    """Isolates the SDK in this process's environment (and so its children's): its settings,
    caches, credentials and netrc all live in a fresh home under `tmp`, no key or base URL comes
    from the environment, and no proxy stands between it and loopback. Call it before anything
    imports wandb."""
    for name in list(os.environ):
        if name.startswith("WANDB_") or name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            del os.environ[name]
    home = tmp / "home"
    for d in ("home", "wandb", "wandb-config", "wandb-cache", "wandb-data", "wandb-artifacts"):
        (tmp / d).mkdir()
    (home / ".netrc").write_text("")
    (home / ".netrc").chmod(0o600)
    os.environ.update(
        HOME=str(home),
        NETRC=str(home / ".netrc"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        WANDB_DIR=str(tmp / "wandb"),
        WANDB_CONFIG_DIR=str(tmp / "wandb-config"),
        WANDB_CACHE_DIR=str(tmp / "wandb-cache"),
        WANDB_DATA_DIR=str(tmp / "wandb-data"),
        WANDB_ARTIFACT_DIR=str(tmp / "wandb-artifacts"),
        WANDB_SILENT="true",
        WANDB_ERROR_REPORTING="false",
        WANDB_DISABLE_GIT="true",
        # Bounded: a failing request is retried at most once, after 1 s (wandb-core reads whole
        # seconds: a fraction is 0, which means its default of several seconds).
        WANDB_HTTP_TIMEOUT="15",
        WANDB__GRAPHQL_RETRY_MAX="1",
        WANDB__GRAPHQL_RETRY_WAIT_MIN_SECONDS="1",
        WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS="1",
    )


def script_env(url: str, api_key: str, **extra: str) -> dict[str, str]:
    """The environment of a training script that logs into the herald at `url` as the owner of
    `api_key`: this process's, with WANDB_BASE_URL and WANDB_API_KEY set, plus `extra`."""
    # The script gets a wandb service of its own: the one this test process started (for its
    # `wandb.Api`) announces itself in the environment, and a script sharing it would leave its
    # run to that service's teardown.
    env = {k: v for k, v in os.environ.items() if "WANDB_SERVICE" not in k.upper()}
    env.update(WANDB_BASE_URL=url, WANDB_API_KEY=api_key, WANDB_SILENT="true", **extra)
    return env


# ---------------------------------------------------------------------------------------------
# Global ids


def decode_global_id(global_id: str) -> tuple[str, int]:
    """`VHJpZ2dlcjox` -> ("Trigger", 1): W&B's ids are base64 of `<Type>:<number>`."""
    padded = global_id + "=" * (-len(global_id) % 4)
    text = base64.b64decode(padded).decode()
    kind, _, number = text.rpartition(":")
    assert kind and number.isdigit(), f"{global_id!r} decodes to {text!r}, not <Type>:<number>"
    return kind, int(number)


def encode_global_id(kind: str, number: int) -> str:
    return base64.b64encode(f"{kind}:{number}".encode()).decode()


# ---------------------------------------------------------------------------------------------
# REST


class RestError(AssertionError):
    pass


@dataclass
class Rest:
    """herald's REST API as one user (their API key)."""

    base_url: str
    key: str

    def call(self, method: str, path: str, body: Any = None, expect: int | tuple[int, ...] = (200, 201, 204)):
        expect = (expect,) if isinstance(expect, int) else expect
        r = requests.request(
            method,
            self.base_url + path,
            headers={"Authorization": f"Bearer {self.key}"},
            json=body,
            timeout=15,
        )
        if r.status_code not in expect:
            raise RestError(f"{method} {path} {json.dumps(body)} -> {r.status_code} {r.text}")
        if not r.content:
            return None
        return r.json()

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw):
        return self.call("PUT", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw):
        return self.call("PATCH", path, body, **kw)

    def delete(self, path: str, **kw):
        return self.call("DELETE", path, **kw)


def history(rest: Rest, run_path: str) -> list[dict]:
    """Every history row of the run at `run_path` (/entities/E/projects/P/runs/R), in order."""
    rows, after = [], ""
    while True:
        page = rest.get(f"{run_path}/history?limit=1000&after={after}")
        rows += page["rows"]
        if not page["next_cursor"]:
            return rows
        after = page["next_cursor"]


# ---------------------------------------------------------------------------------------------
# The receiver: webhooks and Slack's chat.postMessage


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every request. `/api/chat.postMessage`
    answers as Slack does (`{"ok": true}`); every other path answers 200 `{}`."""

    server: http.server.ThreadingHTTPServer = field(repr=False)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def start(cls) -> "Receiver":
        receiver: Receiver

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with receiver.lock:
                    receiver.requests.append(
                        Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                answer = b'{"ok": true}' if self.path.startswith("/api/chat.postMessage") else b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        receiver = cls(server=server)
        threading.Thread(target=server.serve_forever, name="receiver", daemon=True).start()
        return receiver

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def posts_to(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, what: str, match: Callable[[Received], bool], timeout: float = 20.0) -> Received:
        def probe():
            with self.lock:
                return next((r for r in self.requests if match(r)), None)

        return wait_until(what, probe, timeout=timeout)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------
# The recording proxy: the SDK talks to herald through it, so a failing test can show the
# GraphQL requests it sent and what herald answered.


@dataclass
class Exchange:
    method: str
    path: str
    request: bytes
    status: int
    response: bytes

    def render(self) -> str:
        def text(b: bytes) -> str:
            s = b.decode("utf-8", "replace")
            try:
                s = json.dumps(json.loads(s), indent=None)
            except ValueError:
                pass
            return s if len(s) <= 4000 else s[:4000] + "…"

        return f"{self.method} {self.path} -> {self.status}\n  request:  {text(self.request)}\n  response: {text(self.response)}"


@dataclass
class RecordingProxy:
    target: str  # http://127.0.0.1:PORT of herald
    server: http.server.ThreadingHTTPServer = field(repr=False, default=None)
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def start(cls, target: str) -> "RecordingProxy":
        proxy = cls(target=target)
        parsed = urllib.parse.urlsplit(target)
        hop_by_hop = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade", "host"}

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in hop_by_hop}
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    status, resp_headers = resp.status, resp.getheaders()
                except OSError as e:
                    status, resp_headers, data = 502, [("Content-Type", "text/plain")], f"proxy: {e}".encode()
                finally:
                    conn.close()
                with proxy.lock:
                    proxy.exchanges.append(Exchange(self.command, self.path, body, status, data))
                self.send_response(status)
                for k, v in resp_headers:
                    if k.lower() not in hop_by_hop and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        proxy.server = server
        threading.Thread(target=server.serve_forever, name="proxy", daemon=True).start()
        return proxy

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def mark(self) -> int:
        with self.lock:
            return len(self.exchanges)

    def since(self, mark: int) -> list[Exchange]:
        with self.lock:
            return list(self.exchanges[mark:])

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------
# Automations as the SDK sees them


def saved_filter(automation) -> dict:
    """A saved automation's filter as the SDK would send it back on an update (the same JSON
    `create_automation` sends for an event's filter)."""
    from wandb.automations._inputs import prepare_event_filter_input

    return json.loads(prepare_event_filter_input(automation.event.filter))


def input_filter(event) -> dict:
    """The filter JSON `create_automation` sends for `event` (its `eventFilter`)."""
    from wandb.automations._inputs import prepare_event_filter_input

    return json.loads(prepare_event_filter_input(event.filter))


def automation_number(automation) -> int:
    """herald's REST id of an automation from its SDK id (`VHJpZ2dlcjox` is `Trigger:1`)."""
    kind, number = decode_global_id(automation.id)
    assert kind == "Trigger", f"an automation's id should be a Trigger, got {kind!r}"
    return number


def integration_number(integration_id: str) -> int:
    return decode_global_id(integration_id)[1]


def http_status(error: BaseException) -> int | None:
    """The HTTP status herald answered with, found on the SDK's error or the one it wraps."""
    from wandb.sdk.lib.service.service_connection import WandbApiFailedError

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, WandbApiFailedError):
            return error.response.http_status if error.response is not None else None
        error = getattr(error, "exc", None) or error.__cause__ or error.__context__
    return None


def assert_not_a_server_error(error: BaseException) -> None:
    status = http_status(error)
    assert not (status and status >= 500), f"herald answered {status}: {error}"
