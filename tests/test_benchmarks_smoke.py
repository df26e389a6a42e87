"""The benchmarks run end to end and print well-formed reports.

Speed is never asserted here (CI machines vary); only that every case was
measured, with sane numbers, and that the markdown is ready to paste.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_calls.py"
CASE_ROWS = (
    "get_process_info",
    "get_latest_processes (10 processes)",
    "create_process",
    "stop_process",
)


def test_quick_run_reports_every_case(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable, str(BENCH), "--quick", "--calls", "64", "--pairs", "2",
            "--warmup", "16", "--runs", "2", "--iterations", "50", "--inflight", "20",
            "--rss-latency", "0.2", "--json", str(results),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = done.stdout

    # Every table row has as many cells as its header.
    tables: list[list[str]] = []
    for line in report.splitlines():
        if line.startswith("|"):
            if not tables or not tables[-1]:
                tables.append([])
            tables[-1].append(line)
        elif tables and tables[-1]:
            tables.append([])
    tables = [table for table in tables if table]
    assert len(tables) == 3  # calls, decoding, memory
    for table in tables:
        assert set(table[1].replace("|", "")) <= set("-: ")  # the separator row
        assert {line.count("|") for line in table} == {table[0].count("|")}
    for row in CASE_ROWS:
        assert any(line.startswith(f"| {row} |") for line in tables[0]), row
    assert any(line.startswith("| one ProcessV2 |") for line in tables[1])
    assert any(line.startswith("| hathora_async |") for line in tables[2])
    assert "Machine: " in report

    data = json.loads(results.read_text())
    assert set(data["calls"]) == {"info", "latest", "create", "stop"}
    for row in data["calls"].values():
        assert row["raw_us"] > 0 and row["hathora_us"] > 0
        assert len(row["hathora_ratios"]) == 2
        assert row["hathora_ratio"] == statistics.median(row["hathora_ratios"])
    decode = data["decode"]
    for key in ("loads_one", "decode_one", "structure_one", "loads_many", "decode_many"):
        assert decode[key] > 0, key
    for impl in ("raw", "hathora"):
        rss = data["rss"][impl]
        assert rss["peak_kib"] > 0 and rss["before_kib"] > 0
        assert rss["wall_s"] >= 0.2  # the calls did wait for the server's answers


def test_rate_limit_bench_reports_every_case_at_a_tiny_scale() -> None:
    # This tree's package, in the bench and in the fake it starts.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_ratelimit.py"), "--scale", "0.03"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("|")]
    header, separator, *cases = rows
    assert "per process" in header and set(separator.replace("|", "")) <= set("-: ")
    assert len(cases) == 10  # five cases, budget on and off
    assert {line.count("|") for line in rows} == {header.count("|")}
    for line in cases:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        made, sent, per = int(cells[2]), int(cells[4]), float(cells[5])
        assert sent >= made > 0 and abs(per - sent / made) <= 0.0051


def test_the_same_process_comparison_with_a_commit_runs() -> None:
    """bench_versus imports a commit's package beside this one; against HEAD (always
    there in a checkout) every case gets a row of sane ratios."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (an unpacked sdist): nothing to export a commit from")
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "benchmarks" / "bench_versus.py"), "--base", "HEAD",
            "--rounds", "4", "--calls", "50", "--warmup", "20", "--only", "info,stop",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [
        line
        for line in done.stdout.splitlines()
        if line.startswith("| get_") or line.startswith("| stop_")
    ]
    assert [row.split("|")[1].strip() for row in rows] == ["get_process_info", "stop_process"]
    for row in rows:
        cells = [cell.strip() for cell in row.split("|")[2:-1]]
        assert float(cells[0]) > 0  # raw µs per call
        for ratio in cells[1:4]:
            assert 0.2 < float(ratio.rstrip("x")) < 5.0
