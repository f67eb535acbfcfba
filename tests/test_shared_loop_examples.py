"""Run the shared-loop recipes in ``examples/shared_loop``, which the docs
include: loop-bound objects made per process survive a real ``os.fork()``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pathlib
import sys
import threading
import types
import typing as t

import pytest
from flask import Flask

PATIENCE = 30
EXAMPLES = pathlib.Path(__file__).parent.parent / "examples" / "shared_loop"


def load(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"shared_loop_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def concurrent_hits(app: Flask, n: int) -> list[tuple[int, t.Any]]:
    results: list[tuple[int, t.Any]] = []

    def hit() -> None:
        response = app.test_client().get("/hit")
        results.append((response.status_code, response.json))

    threads = [threading.Thread(target=hit) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
    return results


def check_hits(results: list[tuple[int, t.Any]], first: int) -> None:
    assert [status for status, _ in results] == [200] * len(results)
    hits = sorted(body["hits"] for _, body in results)
    assert hits == list(range(first, first + len(results)))


def save_coverage() -> None:  # pragma: no cover (runs in a forked child)
    try:
        import coverage
    except ImportError:
        return
    cov = coverage.Coverage.current()
    if cov is not None:
        cov.stop()
        cov.save()


@pytest.fixture
def recipe() -> t.Iterator[types.ModuleType]:
    module = load("app")
    yield module
    module.shared_loop.close()


def test_resources_are_created_once_per_loop(recipe: types.ModuleType) -> None:
    app = recipe.create_app()
    check_hits(concurrent_hits(app, 10), first=1)
    check_hits(concurrent_hits(app, 10), first=11)
    assert len(recipe._resources) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)
def test_resources_survive_fork(recipe: types.ModuleType) -> None:
    """The parent serves contended requests first, so its lock is bound to
    its loop; a forked child (a gunicorn worker forked after ``--preload``)
    makes its own on first use and serves contended requests too.
    """
    app = recipe.create_app()
    check_hits(concurrent_hits(app, 20), first=1)
    read_end, write_end = os.pipe()
    pid = os.fork()

    if pid == 0:  # pragma: no cover (child; coverage saved by save_coverage)
        status = 1
        try:
            os.close(read_end)
            results = concurrent_hits(app, 20)
            try:
                check_hits(results, first=1)
                report = b"ok"
            except AssertionError:
                report = repr(results).encode()
            recipe.shared_loop.close()
            os.write(write_end, report)
            status = 0
        finally:
            save_coverage()
            os._exit(status)

    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        report = reader.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == b"ok"
    # The parent's objects are untouched.
    check_hits(concurrent_hits(app, 5), first=21)


def test_gunicorn_conf_closes_the_loop(
    recipe: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = load("gunicorn_conf")
    monkeypatch.setitem(sys.modules, "app", recipe)
    app = recipe.create_app()
    check_hits(concurrent_hits(app, 2), first=1)
    loop = recipe.shared_loop.loop
    conf.worker_exit(None, None)
    assert loop.is_closed()
    assert (conf.worker_class, conf.threads) == ("gthread", 8)


@pytest.fixture
def features() -> t.Iterator[types.ModuleType]:
    module = load("features")
    yield module
    module.shared_loop.close()


def test_background_task_and_sync_code(features: types.ModuleType) -> None:
    client = features.create_app().test_client()
    assert client.post("/signup/ada@example.com").text == "welcome"
    assert features.shared_loop.wait_tasks(PATIENCE) is True
    assert features.sent == ["ada@example.com"]
    assert client.get("/user/7").text == "user 7"


def test_blocking_view_is_reported(
    features: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    client = features.create_app().test_client()
    with caplog.at_level(logging.WARNING, logger="flask_asyncext.shared_loop"):
        assert client.get("/report").text == "done"
    (record,) = caplog.records
    message = record.getMessage()
    assert "report()" in message  # its qualified name on Python >= 3.11
    assert "time.sleep(1)" in message
