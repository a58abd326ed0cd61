"""A PostgreSQL and a Redis of the fault suite's own, on free ports, to stop, kill and freeze.

Never the shared servers: these are started from the Debian binaries into a temporary folder
and signalled by their own process ids (PostgreSQL's whole process group, which holds only
its postmaster and backends).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _wait_port(port: int, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Postgres:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self.frozen_pids: list[int] = []
        self._user: Any = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam("postgres")
            os.chown(folder, self._user.pw_uid, self._user.pw_gid)

    @staticmethod
    def available() -> bool:
        return _pg_bin("initdb") is not None and _pg_bin("postgres") is not None

    def _as_owner(self) -> Any:
        user = self._user
        if user is None:
            return None

        def demote() -> None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        return demote

    def init(self) -> Postgres:
        subprocess.run([_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True,
                       preexec_fn=self._as_owner())  # noqa: PLW1509
        return self

    def start(self) -> Postgres:
        log = open(self.folder / "postgres.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [_pg_bin("postgres"), "-D", str(self.data), "-p", str(self.port),
             "-k", str(self.folder), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "max_connections=60"],
            stdout=log, stderr=log, preexec_fn=self._as_owner(),  # noqa: PLW1509
            start_new_session=True)
        _wait_port(self.port)
        for _ in range(100):
            probe = subprocess.run([_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p",
                                    str(self.port)], capture_output=True)
            if probe.returncode == 0:
                break
            time.sleep(0.1)
        return self

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        if self.frozen:
            self.thaw()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None

    def _family(self) -> list[int]:
        """The postmaster and its children (backends put themselves in groups of their own,
        so a signal to the postmaster's group would miss them)."""
        assert self.process is not None
        pids = [self.process.pid]
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                pids.append(int(stat.split("/")[2]))
        return pids

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend."""
        self.frozen_pids = self._family()
        for pid in self.frozen_pids:
            os.kill(pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        for pid in self.frozen_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = False


class Redis:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self) -> Redis:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port)
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None
