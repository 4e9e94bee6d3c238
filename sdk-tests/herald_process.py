"""`herald serve` as a child of the suite (or of the SDK benchmark): a process on a loopback port of its own, with its
data directory (and, on PostgreSQL, its own schema), that a test can SIGKILL and start again on
the same port, data and configuration."""

from __future__ import annotations

import ctypes
import os
import random
import signal
import socket
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import requests

from herald_sdk import Rest, wait_until


def free_port() -> int:
    """A free loopback port outside the kernel's ephemeral range: while a killed herald is down,
    the clients retrying it are given ephemeral ports for their own end, and one given herald's
    would keep the restarted herald from binding it (or connect to itself)."""
    low, _ = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    while True:
        with socket.socket() as s:
            try:
                # When the range starts too low to leave room, any port the kernel gives.
                s.bind(("127.0.0.1", random.randrange(10000, low) if low > 11000 else 0))
            except OSError:
                continue
            return s.getsockname()[1]


def _die_with_parent():
    # herald gets SIGKILL from the kernel if pytest dies without stopping it.
    try:
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


@dataclass
class PgSchema:
    """A PostgreSQL schema of one herald's, made fresh and dropped at the end."""

    base: str  # postgres://…/test
    name: str
    home: str  # the real HOME, for psql's ~/.pgpass

    @property
    def url(self) -> str:
        """`base` with the schema first on herald's search path."""
        sep = "&" if "?" in self.base else "?"
        return f"{self.base}{sep}options={urllib.parse.quote(f'-c search_path={self.name}')}"

    def create(self) -> None:
        self._psql(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")
        self._psql(f"CREATE SCHEMA {self.name}")

    def drop(self) -> None:
        self._psql(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")

    def _psql(self, sql: str) -> None:
        env = dict(os.environ, HOME=self.home, PGOPTIONS="-c client_min_messages=warning")
        subprocess.run(["psql", self.base, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                       stdout=subprocess.DEVNULL, env=env, timeout=30)


@dataclass
class HeraldProcess:
    """One `herald serve` on 127.0.0.1:`port`. `start` again after `kill` or `stop` brings back
    the same server (arguments, environment, data); every life logs to the end of `log_path`."""

    args: list[str]  # including --listen 127.0.0.1:`port`
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen | None = None

    @classmethod
    def new(cls, binary: Path, data_dir: Path, log_path: Path, database_url: str | None = None,
            **env: str) -> HeraldProcess:
        """A herald, not started yet, on a free port (free_port) with `data_dir`: on SQLite there,
        or on the PostgreSQL database at `database_url`. Its environment is this process's less
        HERALD_*, DATABASE_URL and the proxies, plus `env`."""
        port = free_port()
        args = [str(binary), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir)]
        if database_url:
            args += ["--database-url", database_url]
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("HERALD_") and k not in ("DATABASE_URL", "HTTP_PROXY", "HTTPS_PROXY")}
        full_env.update(env)
        return cls(args, env=full_env, port=port, log_path=log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rest(self, key: str) -> Rest:
        return Rest(self.url + "/api/v1", key)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30) -> None:
        """Starts herald and waits until it answers /healthz."""
        assert not self.running(), "herald is already running"
        with open(self.log_path, "ab") as log:  # the child keeps a descriptor of its own
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        wait_until("herald to answer /healthz", self._healthy, timeout=timeout)

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"herald exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
        try:
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def kill(self) -> None:
        """SIGKILL: herald finishes no request, transaction or shutdown step it is in."""
        assert self.running(), "herald is not running"
        self.proc.kill()
        self.proc.wait(timeout=5)

    def stop(self) -> None:
        """SIGTERM, and SIGKILL when that takes more than 5 s; nothing when it is not running."""
        if not self.running():
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as e:
            return f"(no log: {e})"
