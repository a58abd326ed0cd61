"""SQLite under gevent: a second writer must wait as a greenlet, not stop the worker.

The request that holds SQLite's write lock often waits on Redis or the network before it
commits. Without the gate, another request's write sleeps in SQLite's C busy handler, the whole
gevent worker stops with it, the holder never gets to commit, and the second writer fails with
"database is locked" when the busy timeout runs out. Each case runs in a fresh process with
gevent's monkey patching, as gunicorn's gevent worker does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
from gevent import monkey
monkey.patch_all()
import sys
import gevent
from sqlalchemy import create_engine, text
from sso.database import SQLiteWriteGate

engine = create_engine(f"sqlite:///{sys.argv[1]}", connect_args={"timeout": 1.0})
with engine.begin() as connection:
    connection.execute(text("CREATE TABLE rows (who TEXT)"))
if sys.argv[2] == "gate":
    SQLiteWriteGate(wait=1.0).attach(engine)

outcome = {}

def holder():
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO rows VALUES ('holder')"))
        gevent.sleep(0.3)  # a call to Redis or the network before the commit
    outcome["holder"] = "ok"

def second():
    gevent.sleep(0.05)
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO rows VALUES ('second')"))
        outcome["second"] = "ok"
    except Exception as error:
        outcome["second"] = type(error).__name__ + ": " + str(error).splitlines()[0]

gevent.joinall([gevent.spawn(holder), gevent.spawn(second)])
with engine.connect() as connection:
    count = connection.execute(text("SELECT count(*) FROM rows")).scalar()
print(outcome.get("holder"), "|", outcome.get("second"), "|", count)
"""


def _run(tmp_path: Path, mode: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / f"{mode}.db"), mode],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [part.strip() for part in done.stdout.strip().splitlines()[-1].split("|")]


def test_without_the_gate_a_second_writer_stalls_the_worker_and_fails(tmp_path: Path) -> None:
    pytest.importorskip("gevent")
    holder, second, count = _run(tmp_path, "bare")
    assert holder == "ok"
    assert "database is locked" in second
    assert count == "1"


def test_with_the_gate_both_writers_finish(tmp_path: Path) -> None:
    pytest.importorskip("gevent")
    assert _run(tmp_path, "gate") == ["ok", "ok", "2"]
