"""The benchmark script runs and writes a well-formed table.

These tests check structure, never speed: no assertion depends on a timing.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import types
import typing as t

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "run.py")


@pytest.fixture(scope="module")
def bench() -> types.ModuleType:
    path = list(sys.path)
    spec = importlib.util.spec_from_file_location("asyncext_bench_run", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up while the class is created.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path
    return module


def spread(bench: types.ModuleType, *values: float) -> t.Any:
    return bench.Spread.of(values)


def test_spread_is_median_and_quartiles(bench: types.ModuleType) -> None:
    s = spread(bench, 5, 1, 4, 2, 3)
    assert (s.median, s.q1, s.q3, s.low, s.high, s.rounds) == (3, 2, 4, 1, 5, 5)
    # Under four rounds the spread is the whole range.
    s = spread(bench, 2, 1, 3)
    assert (s.median, s.q1, s.q3) == (2, 1, 3)


def test_impossible_ratio_is_flagged(bench: types.ModuleType) -> None:
    # "3 toolkit plain / 3 hand-written = 0.48x": the toolkit case does all
    # of the hand-written one's work and more.
    row = bench.Row("a / b", spread(bench, 0.45, 0.48, 0.5, 0.52), floor=0.95)
    assert any(f.startswith("IMPOSSIBLE") for f in row.flags())
    straddling = bench.Row("a / b", spread(bench, 0.6, 0.9, 1.0, 1.1), floor=0.95)
    assert any(f.startswith("SUSPECT") for f in straddling.flags())
    sound = bench.Row("a / b", spread(bench, 1.0, 1.01, 1.02, 1.03), floor=0.95)
    assert sound.flags() == []
    # Requests/s of an async view over the same sync view cannot exceed 1x.
    faster = bench.Row("a / b", spread(bench, 1.2, 1.3, 1.4, 1.5), ceiling=1.05)
    assert any(f.startswith("IMPOSSIBLE") for f in faster.flags())
    reaching = bench.Row("a / b", spread(bench, 0.8, 0.9, 1.1, 1.2), ceiling=1.05)
    assert any(f.startswith("SUSPECT") for f in reaching.flags())


def test_more_sleepers_than_threads_is_flagged(bench: types.ModuleType) -> None:
    server = bench.Server("gthread 2x8", [], cap=16)
    # 10 ms sleeps: 2,000 requests/s are 20 requests asleep at once.
    assert bench.load_note([bench.Load(2000, None)], server, 0.01).startswith(
        "IMPOSSIBLE: 20.0 sleepers on 16 threads"
    )
    assert bench.load_note([bench.Load(1200, None)], server, 0.01) == ""


def test_wide_spread_is_flagged_noisy(bench: types.ModuleType) -> None:
    assert "noisy" in bench.Row("a", spread(bench, 1, 1.5, 2, 3)).flags()
    assert "noisy" not in bench.Row("a", spread(bench, 1, 1.01, 1.02, 1.03)).flags()


@pytest.mark.parametrize(
    ("values", "op", "expected"),
    [
        ((1.0, 1.1, 1.2, 1.3), "<=", "met"),
        ((1.6, 1.7, 1.8, 1.9), "<=", "missed"),
        ((1.3, 1.4, 1.6, 1.7), "<=", "unclear"),
        ((1.6, 1.7, 1.8, 1.9), ">=", "met"),
    ],
)
def test_verdict_uses_the_spread(
    bench: types.ModuleType, values: tuple[float, ...], op: str, expected: str
) -> None:
    row = bench.Row("a", spread(bench, *values), target=bench.Target(op, 1.5))
    assert row.verdict() == expected
    assert row.result().startswith(f"{op} 1.5x: {expected}")
    assert bench.Target("<=", 6).text() == "<= 6.0x"
    assert bench.Target("<=", 1.05).text(unicode=True) == "≤ 1.05x"


WRK_OUTPUT = """\
Running 2s test @ http://127.0.0.1:18123/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   124.62ms  301.75ms   2.05s    90.85%
    Req/Sec   731.26    575.98     1.80k    57.89%
  Latency Distribution
     50%    1.46ms
     75%   84.38ms
     90%  391.91ms
     99%    1.56s
  1400 requests in 2.00s, 603.20KB read
  Socket errors: connect 0, read 3, write 0, timeout 4
  Non-2xx or 3xx responses: 1000
Requests/sec:    700.00
Transfer/sec:    294.27KB
"""


def test_wrk_output_counts_only_successes(
    bench: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(*args: t.Any, **kwargs: t.Any) -> t.Any:
        return types.SimpleNamespace(stdout=WRK_OUTPUT)

    monkeypatch.setattr(bench.subprocess, "run", run)
    load = bench.load_wrk(1, 2, 64)
    assert load.rps == pytest.approx(200.0)  # (1400 - 1000) / 2 s
    assert load.p99 == pytest.approx(1.56)
    assert (load.failed, load.socket_errors) == (1000, 7)


@pytest.fixture
def server() -> t.Iterator[t.Callable[[int], int]]:
    """Serve keep-alive responses with a given status on 127.0.0.1."""
    servers = []

    def serve(status: int) -> int:
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: t.Any) -> None:
                pass

        s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        s.daemon_threads = True
        servers.append(s)
        threading.Thread(target=s.serve_forever, daemon=True).start()
        return int(s.server_address[1])

    yield serve
    for s in servers:
        s.shutdown()
        s.server_close()


def test_python_client_counts_failed_responses(
    bench: types.ModuleType, server: t.Callable[[int], int]
) -> None:
    ok = bench.load_python(server(200), 0.3, 2)
    assert ok.rps > 0
    assert (ok.failed, ok.socket_errors) == (0, 0)
    failing = bench.load_python(server(500), 0.3, 2)
    assert failing.rps == 0
    assert failing.failed > 0


def test_server_that_does_not_start_is_reported(
    bench: types.ModuleType,
    server: t.Callable[[int], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = bench.Server("broken", [sys.executable, "-c", "raise ValueError('boom')"])
    # The second "server" is a sleeping process; the test server answers on
    # its port.
    working = bench.Server(
        "working", [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    ports = iter([1, server(200)])
    monkeypatch.setattr(bench, "free_port", lambda: next(ports))
    results = bench.run_servers([broken, working], [2], 1, 0.2, 0)
    assert results[broken.name, 2] == []
    assert broken.failed == "exited with 1 (ValueError: boom)"
    assert (
        bench.load_note([], broken) == "not measured: exited with 1 (ValueError: boom)"
    )
    (load,) = results[working.name, 2]
    assert load.rps > 0
    assert working.failed == ""


def test_compare_reports_disagreement(
    bench: types.ModuleType, tmp_path: t.Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*values: float) -> str:
        row = bench.Row("toolkit / hand-written", spread(bench, *values))
        path = tmp_path / f"{values[0]}.json"
        sections = [{"title": "group", "method": "", "rows": [row.as_dict()]}]
        path.write_text(json.dumps({"meta": {}, "sections": sections}))
        return str(path)

    first, close, far = (
        run(1.0, 1.1, 1.2, 1.3),
        run(1.15, 1.2, 1.3, 1.4),
        run(2, 3, 4, 5),
    )
    bench.compare([first, close])
    assert "agree" in capsys.readouterr().out.split("\n")[2]
    bench.compare([first, far])
    out = capsys.readouterr().out
    assert "DISAGREE" in out
    assert "1 rows whose spreads do not overlap" in out


@pytest.mark.slow
def test_smoke_run_writes_well_formed_tables(tmp_path: t.Any) -> None:
    result = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--smoke",
            "--no-servers",
            "--json",
            str(tmp_path / "out.json"),
            "--rst",
            str(tmp_path / "table-py{python}.inc"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    titles = [s["title"] for s in data["sections"]]
    assert len(titles) == 6
    labels = {r["label"]: r for s in data["sections"] for r in s["rows"]}
    # Every figure of issue 11, sections 1 and 3, with its target.
    for label, target in [
        ("toolkit generator body / hand-written functools.wraps", 6.0),
        ("toolkit generator body / hand-written async def", 3.9),
        ("toolkit plain body / hand-written functools.wraps", 2.2),
        ("3 toolkit generator decorators / 3 hand-written", 1.05),
    ]:
        assert labels[label]["target"]["value"] == target
    threads = [s for s in data["sections"] if "request thread" in s["title"]]
    assert [
        [(r["label"], (r["target"] or {}).get("value")) for r in s["rows"][:2]]
        for s in threads
    ] == [
        [
            ("async view on SharedLoop / sync view", target),
            ("async view on a thread-local loop (baseline) / sync view", None),
        ]
        for target in (1.4, 1.45)
    ]
    # The floors the targets are read against, in the same run.
    assert [label for label in labels if "a minimal driver" in label] == [
        "generator body run by a minimal driver (send and StopIteration, nothing"
        " checked) / hand-written functools.wraps",
        "generator body run by a minimal driver (send, await and StopIteration,"
        " nothing checked) / hand-written async def",
    ]
    floors = [
        r["label"]
        for s in threads
        for r in s["rows"]
        if r["label"].startswith("sync view + one round trip to another thread")
    ]
    assert len(floors) == 2
    for row in labels.values():
        ratio = row["ratio"]
        assert ratio["low"] <= ratio["q1"] <= ratio["median"] <= ratio["q3"]
        assert ratio["q3"] <= ratio["high"]
        assert ratio["median"] > 0

    # The text table shows every row, with its ratio and spread.
    for label, row in labels.items():
        ratio = row["ratio"]
        assert f"{ratio['median']:.2f}x" in result.stdout.split(label, 1)[1]

    version = f"{sys.version_info[0]}{sys.version_info[1]}"
    rst = (tmp_path / f"table-py{version}.inc").read_text(encoding="utf-8")
    lines = rst.splitlines()
    assert lines[0].startswith(".. This file is written by benchmarks/run.py")
    assert any(line.startswith(":Versions: Python ") for line in lines)
    tables = rst.split(".. list-table:: ")[1:]
    assert [table.split("\n", 1)[0] for table in tables] == titles
    for table, section in zip(tables, data["sections"], strict=True):
        rows: list[list[str]] = []
        for line in table.splitlines():
            cell = re.sub(r"\\(.)", r"\1", line[7:])
            if line.startswith("   * - "):
                rows.append([cell])
            elif line.startswith("     - "):
                rows[-1].append(cell)
        assert rows[0] == [
            "Comparison",
            "Ratio",
            "Spread",
            "Medians, a / b",
            "Target, checks",
        ]
        assert [r[0] for r in rows[1:]] == [r["label"] for r in section["rows"]]
        assert all(len(r) == 5 for r in rows)

    # A saved run renders to the same tables.
    subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--render",
            str(tmp_path / "out.json"),
            "--rst",
            str(tmp_path / "again-py{python}.inc"),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert (tmp_path / f"again-py{version}.inc").read_text(encoding="utf-8") == rst
