"""Fixtures of the SDK suite: one `herald serve` per session (SQLite in a fresh data directory,
or a fresh PostgreSQL schema with HERALD_SDK_BACKEND=postgres), seeded over REST, a webhook
receiver, and `wandb.Api` clients for the seeded users, isolated from the machine's wandb
settings and credentials.

The SDK reaches herald through a recording proxy: a failing test's report lists the GraphQL
requests it sent and herald's answers ("herald exchanges"), and herald's log is kept in the
report of a failing test too ("herald log", last lines).

Environment: HERALD_BIN (default target/debug/herald), HERALD_SDK_BACKEND (`sqlite`, the
default, or `postgres`), HERALD_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test),
HERALD_SDK_KEEP (a directory to copy the heralds' logs into at the end), HERALD_SDK_LOG (herald's
log filter, default `info`).

The whole suite shares one server; tests make automations under names of their own and
compare listings with what REST shows, so they pass in any order and alone. A test that kills
herald has one of its own (`own_herald`).
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from herald_process import HeraldProcess, PgSchema
from herald_sdk import (ADMIN_KEY, ORG_SLACK_CHANNEL, SLACK_CHANNEL, SLACK_WORKSPACE, RecordingProxy, Receiver, Rest,
                        isolate_wandb)

REPO = Path(__file__).resolve().parent.parent

# Isolate the SDK (herald_sdk.isolate_wandb) before anything imports wandb.
_TMP = Path(tempfile.mkdtemp(prefix="herald-sdk-tests-"))
_REAL_HOME = os.environ.get("HOME", "/")  # for psql and herald (a ~/.pgpass, say)
isolate_wandb(_TMP)


def pytest_unconfigure(config):
    shutil.rmtree(_TMP, ignore_errors=True)


# A SIGTERM (CI's timeout, say) stops pytest as Ctrl-C does (pytest would count a SystemExit
# as one failed test and go on), so the server is stopped and the schema dropped; herald also
# gets SIGKILL from the kernel if pytest dies any other way.
def _on_sigterm(*_):
    raise KeyboardInterrupt("SIGTERM")


signal.signal(signal.SIGTERM, _on_sigterm)


# ---------------------------------------------------------------------------------------------
# The server


@dataclass
class Herald:
    server: HeraldProcess
    sdk_url: str  # the recording proxy in front of it, for the SDK
    receiver: Receiver
    proxy: RecordingProxy
    keys: dict[str, str]
    integrations: dict[str, int]  # REST ids by integration name

    @property
    def url(self) -> str:
        """herald itself, for REST and for training scripts (see test_training.run_script)."""
        return self.server.url

    def rest(self, user: str = "admin") -> Rest:
        return self.server.rest(self.keys[user])

    def log_tail(self, lines: int = 60) -> str:
        return self.server.log_tail(lines)


@contextmanager
def _serve(name: str, **env: str) -> Iterator[HeraldProcess]:
    """A started herald of its own, `env` added to its environment: on a free port, with its
    data directory and log named after `name`; with HERALD_SDK_BACKEND=postgres, in a fresh
    schema, dropped at the end. Its log is copied into HERALD_SDK_KEEP at the end."""
    binary = Path(os.environ.get("HERALD_BIN", REPO / "target" / "debug" / "herald"))
    assert binary.is_file(), f"{binary} is missing: build it with `cargo build -p herald`"
    backend = os.environ.get("HERALD_SDK_BACKEND", "sqlite")
    assert backend in ("sqlite", "postgres"), f"HERALD_SDK_BACKEND={backend!r}: sqlite or postgres"

    schema = None
    if backend == "postgres":
        pg_base = os.environ.get("HERALD_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
        schema = PgSchema(pg_base, f"herald_t_{name}_{os.getpid()}", home=_REAL_HOME)
        schema.create()

    server = HeraldProcess.new(
        binary, _TMP / f"{name}-data", _TMP / f"{name}.log", schema.url if schema else None,
        HOME=_REAL_HOME,
        HERALD_BOOTSTRAP_API_KEY=ADMIN_KEY,
        HERALD_LOG=os.environ.get("HERALD_SDK_LOG", "info"),
        **env,
    )
    atexit.register(server.stop)  # also when the session ends without running the finalizer
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if schema:
            try:
                schema.drop()
            except (subprocess.SubprocessError, OSError) as e:
                print(f"could not drop {schema.name}: {e}", file=sys.stderr)
        keep = os.environ.get("HERALD_SDK_KEEP")
        if keep and server.log_path.exists():
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(server.log_path, Path(keep) / f"herald-{backend}-{name}.log")


_CURRENT: Herald | None = None


@pytest.fixture(scope="session")
def herald():
    global _CURRENT
    receiver = Receiver.start()
    proxy = None
    try:
        with _serve(
            "sdk",
            # The receiver is on loopback, which herald refuses unless told otherwise.
            HERALD_ALLOWED_DESTINATIONS="127.0.0.0/8",
            HERALD_SLACK_BASE_URL=receiver.url,
            HERALD_DELIVERY_TIMEOUT="2s",
        ) as server:
            proxy = RecordingProxy.start(server.url)
            h = Herald(server=server, sdk_url=proxy.url, receiver=receiver, proxy=proxy,
                       keys={"admin": ADMIN_KEY}, integrations={})
            _seed(h)
            _CURRENT = h
            yield h
    finally:
        _CURRENT = None
        if proxy:
            proxy.stop()
        receiver.stop()


_OWN_COUNT = itertools.count(1)
_OWN = pytest.StashKey[HeraldProcess]()


@pytest.fixture
def own_herald(request):
    """A herald of this test's own, for a test that kills it: started as the session's is (same
    binary, backend and log filter) but without a receiver, and seeded with nothing but the
    bootstrap admin (herald_sdk.ADMIN_KEY). A failing test's report carries the end of its log."""
    with _serve(f"own{next(_OWN_COUNT)}") as server:
        request.node.stash[_OWN] = server
        yield server


# ---------------------------------------------------------------------------------------------
# The seed, over REST as the bootstrap admin:
#
#   users alice (ADMIN of team acme, MEMBER of acme-org), bob (VIEWER of acme), carol (ADMIN of
#   team other), each with an API key;
#   organization acme-org holding team acme, and the registry `model` (wandb-registry-model);
#   project acme/vision with collection resnet (type model): v0, v1 (v1 with alias `staging`);
#   v0 linked into acme-org/wandb-registry-model/classifiers;
#   project other/sandbox;
#   integrations (the receiver's paths): acme: webhook acme-hook (/hook/acme), webhook
#   acme-fire (/hook/fire), Slack acme-slack (#ml-alerts in workspace acme-workspace, bot
#   token, posted through HERALD_SLACK_BASE_URL to the receiver); acme-org: webhook org-hook
#   (/hook/org), Slack org-slack (#registry); other: webhook other-hook (/hook/other).


def _seed(h: Herald) -> None:
    admin = h.rest()
    for name in ("alice", "bob", "carol"):
        created = admin.post("/users", {"username": name, "email": f"{name}@example.com"}, expect=201)
        h.keys[name] = created["api_key"]
    admin.post("/entities", {"name": "acme-org", "kind": "organization"}, expect=201)
    admin.post("/entities", {"name": "acme", "kind": "team", "organization": "acme-org"}, expect=201)
    admin.post("/entities", {"name": "other", "kind": "team"}, expect=201)
    admin.put("/entities/acme/members/alice", {"role": "ADMIN"}, expect=200)
    admin.put("/entities/acme/members/bob", {"role": "VIEWER"}, expect=200)
    admin.put("/entities/acme-org/members/alice", {"role": "MEMBER"}, expect=200)
    admin.put("/entities/other/members/carol", {"role": "ADMIN"}, expect=200)

    admin.post("/entities/acme/projects", {"name": "vision"}, expect=201)
    admin.post("/entities/other/projects", {"name": "sandbox"}, expect=201)
    admin.post("/entities/acme-org/registries", {"name": "model"}, expect=201)
    admin.post("/entities/acme/projects/vision/artifacts", {"collection": "resnet", "type": "model"}, expect=201)
    admin.post("/entities/acme/projects/vision/artifacts",
               {"collection": "resnet", "type": "model", "aliases": ["staging"]}, expect=201)
    admin.post("/entities/acme/projects/vision/artifacts/resnet/versions/v0/links",
               {"registry": "acme-org/model", "collection": "classifiers"}, expect=201)

    admin.put("/entities/acme/secrets/SLACK_BOT", {"value": "xoxb-sdk-tests"}, expect=(200, 201, 204))
    admin.put("/entities/acme-org/secrets/SLACK_BOT", {"value": "xoxb-sdk-tests-org"}, expect=(200, 201, 204))

    def integration(entity: str, body: dict) -> None:
        created = admin.post(f"/entities/{entity}/integrations", body, expect=201)
        h.integrations[body["name"]] = created["id"]

    r = h.receiver.url
    integration("acme", {"kind": "webhook", "name": "acme-hook", "url": f"{r}/hook/acme"})
    integration("acme", {"kind": "webhook", "name": "acme-fire", "url": f"{r}/hook/fire"})
    integration("acme", {"kind": "slack", "name": "acme-slack", "channel_name": SLACK_CHANNEL,
                         "workspace_name": SLACK_WORKSPACE, "bot_token_secret": "SLACK_BOT",
                         "channel_id": "C0SDKTEST"})
    integration("acme-org", {"kind": "webhook", "name": "org-hook", "url": f"{r}/hook/org"})
    integration("acme-org", {"kind": "slack", "name": "org-slack", "channel_name": ORG_SLACK_CHANNEL,
                             "workspace_name": SLACK_WORKSPACE, "bot_token_secret": "SLACK_BOT",
                             "channel_id": "C0SDKORG"})
    integration("other", {"kind": "webhook", "name": "other-hook", "url": f"{r}/hook/other"})


# ---------------------------------------------------------------------------------------------
# SDK clients


def _api(h: Herald, user: str):
    import wandb

    return wandb.Api(overrides={"base_url": h.sdk_url}, api_key=h.keys[user], timeout=15)


@pytest.fixture(scope="session")
def api(herald):
    """wandb.Api as alice, ADMIN of acme."""
    return _api(herald, "alice")


@pytest.fixture(scope="session")
def bob_api(herald):
    """wandb.Api as bob, VIEWER of acme."""
    return _api(herald, "bob")


@pytest.fixture(scope="session")
def carol_api(herald):
    """wandb.Api as carol, of the team `other` only."""
    return _api(herald, "carol")


@pytest.fixture(scope="session")
def scopes(api):
    """The seeded scopes, fetched through the SDK as alice."""
    return {
        "collection": api.artifact_collection("model", "acme/vision/resnet"),
        "project": api.project("vision", entity="acme"),
        "registry": api.registry("model", organization="acme-org"),
        "portfolio": api.artifact_collection("model", "acme-org/wandb-registry-model/classifiers"),
    }


@pytest.fixture(scope="session")
def integrations(api):
    """The webhook (acme-hook, org-hook) and Slack integration of acme and acme-org, as the SDK
    lists them."""
    return {
        entity: {
            "webhook": next(h for h in api.webhook_integrations(entity=entity) if h.name == hook),
            "slack": next(iter(api.slack_integrations(entity=entity))),
        }
        for entity, hook in (("acme", "acme-hook"), ("acme-org", "org-hook"))
    }


@pytest.fixture(autouse=True)
def no_server_errors():
    """Whatever a test sends, herald never answers the SDK with a 5xx."""
    mark = _CURRENT.proxy.mark() if _CURRENT else 0  # 0: the server starts with this test
    yield
    h = _CURRENT
    if h is not None:
        failed = [e.render() for e in h.proxy.since(mark) if e.status >= 500]
        assert not failed, "herald answered with a server error:\n" + "\n".join(failed)


@pytest.fixture
def rest(herald):
    return herald.rest()


# ---------------------------------------------------------------------------------------------
# A failing test's report carries the GraphQL exchanges it caused and the end of herald's log.


def _mark(item, when):
    h = _CURRENT
    item.stash_marks = getattr(item, "stash_marks", {})
    item.stash_marks[when] = h.proxy.mark() if h else 0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    _mark(item, "setup")
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _mark(item, "call")
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    h = _CURRENT
    if report.when in ("setup", "call") and report.failed and h is not None:
        mark = getattr(item, "stash_marks", {}).get(report.when, 0)
        exchanges = h.proxy.since(mark)
        text = "\n".join(e.render() for e in exchanges[-12:]) or "(none)"
        if len(exchanges) > 12:
            text = f"({len(exchanges) - 12} earlier ones left out)\n" + text
        report.sections.append(("herald exchanges", text))
        report.sections.append(("herald log", h.log_tail(40)))
    own = item.stash.get(_OWN, None)
    if report.when in ("setup", "call") and report.failed and own is not None:
        report.sections.append(("own herald log", own.log_tail(40)))
