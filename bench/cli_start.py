"""Start-up time of the ``sso`` command, measured as a user meets it: whole processes.

    .venv/bin/python bench/cli_start.py [--runs 7] [--json]

Each command runs ``--runs`` times (after one warm-up run) in a fresh process, against a fresh
development instance (SQLite and the embedded Redis, in a temporary folder, set up with
``sso init``). Reported per command: the median, min and max wall time, and the CPU time of the
process (user + system). Issue 15's goal is ``sso --help`` and a simple command under 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SSO = Path(sys.executable).with_name("sso")
COMMANDS = [
    ["--help"],
    ["users", "--help"],
    ["db", "current"],
    ["users", "list"],
    ["clients", "list"],
]


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``sso COMMAND``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([str(SSO), *command], env=env, check=True, stdout=subprocess.DEVNULL,
                   timeout=300)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        instance = Path(folder) / "instance"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SSO_")},
               "SSO_ENV": "development", "SSO_INSTANCE_PATH": str(instance),
               "SSO_KEYS_DIR": str(Path(folder) / "keys")}
        subprocess.run([str(SSO), "init"], env=env, check=True, stdout=subprocess.DEVNULL)
        results = {}
        try:
            for command in COMMANDS:
                _run(command, env)
                runs = [_run(command, env) for _ in range(args.runs)]
                walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
                results[" ".join(["sso", *command])] = {
                    "wall_median": statistics.median(walls), "wall_min": min(walls),
                    "wall_max": max(walls), "cpu_median": statistics.median(cpus)}
        finally:
            from sso.embedded import stop_redis  # noqa: PLC0415

            stop_redis(str(instance))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'command':24} {'wall median':>12} {'min':>7} {'max':>7} {'cpu median':>11}")
    for name, row in results.items():
        print(f"{name:24} {row['wall_median']:11.3f}s {row['wall_min']:6.3f}s "
              f"{row['wall_max']:6.3f}s {row['cpu_median']:10.3f}s")


if __name__ == "__main__":
    main()
