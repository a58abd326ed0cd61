"""A flame graph per workload: py-spy samples our server while wrk drives one workload.

    make profile                                   # every workload, SQLite, speedscope JSON
    make profile PROFILE_ARGS="--database postgresql --workloads refresh --format flamegraph"

The server runs as ``make bench`` runs it (``sso serve --workers 1``, a fresh seeded database,
a redis-server of its own), and for each workload ``py-spy record --subprocesses`` samples
the server's worker for ``--duration`` seconds while wrk sends the workload. Files go to
``--out`` (default ``profiles/``): ``<database>-<workload>.speedscope.json`` (open at
speedscope.app or in any speedscope viewer) or ``.svg`` with ``--format flamegraph``. Needs
py-spy (in the dev extras) and root or ptrace permission.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run as bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(bench.WORKLOADS))
    parser.add_argument("--database", default="sqlite",
                        help="sqlite, postgresql or an SQLAlchemy URL")
    parser.add_argument("--duration", type=float, default=10, help="seconds sampled")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--format", choices=["speedscope", "flamegraph"], default="speedscope")
    parser.add_argument("--native", action="store_true", help="C frames too (slower)")
    parser.add_argument("--out", default=str(bench.ROOT / "profiles"))
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        sys.exit("py-spy is missing: pip install -e '.[dev]'")
    # What run.py's workloads read from its options.
    load = bench.parse_args(["--duration", str(args.duration), "--warmup", "1"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = args.database.split(":")[0].split("+")[0]
    suffix = "speedscope.json" if args.format == "speedscope" else "svg"
    with tempfile.TemporaryDirectory(prefix="sso-profile-") as tmp, \
            bench.our_provider(load, Path(tmp), args.database) as target:
        for workload in args.workloads.split(","):
            script, env = bench.workload_env(load, target, workload, Path(tmp))
            bench.wrk(load, target, script, env, 1)  # warm-up
            script, env = bench.workload_env(load, target, workload, Path(tmp))
            path = out / f"{tag}-{workload}.{suffix}"
            command = [py_spy, "record", "--pid", str(target.pgid), "--subprocesses",
                       "--rate", str(args.rate), "--duration", str(round(args.duration)),
                       "--format", args.format, "--output", str(path), "--nonblocking"]
            if args.native:
                command.append("--native")
            spy = threading.Thread(target=subprocess.run, args=(command,),
                                   kwargs={"check": True, "capture_output": True})
            spy.start()
            raw = bench.wrk(load, target, script, env, args.duration + 1)
            spy.join()
            print(f"{workload:18} {raw['requests']:7} requests  -> {path}", flush=True)


if __name__ == "__main__":
    main()
