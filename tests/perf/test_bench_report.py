"""``make bench``'s report: the CPU it counts, and the database backends' share of it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import run  # noqa: E402


def test_cpu_spent_counts_the_processes_alive_at_the_end_or_some_of_them() -> None:
    before = {1: 10.0, 2: 5.0, 3: 1.0}
    after = {1: 12.5, 2: 5.5, 4: 0.25}  # 3 ended, 4 started in between
    assert run.cpu_spent(before, after) == 3.25
    assert run.cpu_spent(before, after, {2, 3, 4}) == 0.75
    assert run.cpu_spent(before, after, set()) == 0.0


def _result(cpu: float, database: float) -> dict[str, float]:
    return {"cpu_us_per_unit": cpu, "database_cpu_us_per_unit": database, "rate": 100.0,
            "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0}


def test_the_table_shows_the_database_share_where_there_is_one() -> None:
    results = {"ours-sqlite": {"refresh": _result(1200, 0.0)},
               "ours-postgresql": {"refresh": _result(1990, 528.4)},
               "reference-redis": {"refresh": _result(920, 0.0)}}
    lines = run.table(results, ["refresh"]).splitlines()
    header = [cell.strip() for cell in lines[0].split("|")]
    assert header[2:4] == ["CPU-µs/unit", "of it DB"]
    rows = {cells[1]: cells for cells in
            ([cell.strip() for cell in line.split("|")] for line in lines[1:4])}
    assert rows["ours-postgresql"][2:4] == ["1990", "528"]
    assert rows["ours-sqlite"][2:4] == ["1200", ""]
    assert rows["reference-redis"][3] == ""
    assert "ours-postgresql/reference-redis  0.46x" in run.table(results, ["refresh"])


def test_repeated_runs_take_turns_and_report_each_targets_median(monkeypatch: Any) -> None:
    order: list[str] = []
    rates = {"ours": iter([300.0, 100.0, 200.0]), "reference": iter([50.0, 70.0, 60.0])}

    def measure(args: Any, target: str, workload: str, workdir: Any) -> dict[str, Any]:
        order.append(target)
        return {"rate": next(rates[target]), "run": len(order)}

    monkeypatch.setattr(run, "measure", measure)
    args = run.parse_args(["--repeat", "3"])
    medians = run.measure_in_turns(args, {"ours": "ours", "reference": "reference"},
                                   "refresh", Path("."))
    assert order == ["ours", "reference"] * 3
    assert medians == {"ours": {"rate": 200.0, "run": 5},
                       "reference": {"rate": 60.0, "run": 6}}
