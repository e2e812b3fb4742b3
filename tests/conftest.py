"""Shared fixtures: a real tansu broker (session-wide) and worker processes against real chdb."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clientpulse.broker import LocalBroker
from clientpulse.progress import ProgressProbe
from clientpulse.settings import Settings


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A fresh in-memory broker per test: topics have fixed registry names, so tests must not share one."""
    with LocalBroker(log_path=tmp_path / "broker.log") as b:
        yield b


class WorkerProcess:
    """`clientpulse worker` as a child process, the way users run it."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {**os.environ, **self.settings.env()}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "clientpulse.cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def wait_ready(self, timeout: float = 30) -> float:
        """Seconds from now until the worker has its partitions (it writes a ready file)."""
        from streams.worker import ready_file

        started = time.monotonic()
        path = ready_file(self.settings)
        while time.monotonic() - started < timeout:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker died ({self.process.returncode}):\n{self.log()[-3000:]}")
            if path.exists():
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"worker not ready within {timeout}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_committed(self, expected: int, timeout: float = 180) -> None:
        """Wait until the group's committed offsets cover `expected` records (= written to ClickHouse)."""
        probe = ProgressProbe(self.settings.kafka_bootstrap, self.settings.app_id)
        deadline = time.monotonic() + timeout
        committed = 0
        try:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"worker died ({self.process.returncode}):\n{self.log()[-3000:]}")
                committed = probe.committed()
                if committed >= expected:
                    return
                time.sleep(0.2)
        finally:
            probe.close()
        raise AssertionError(f"worker committed {committed} of {expected} records in {timeout}s:\n{self.log()[-6000:]}")


@pytest.fixture
def settings(tmp_path: Path, broker: LocalBroker) -> Settings:
    """Fresh data dir and a unique consumer group, so tests never see each other's offsets."""
    return Settings(
        data_dir=tmp_path / "data",
        kafka_bootstrap=broker.bootstrap,
        app_id=f"cp-test-{uuid.uuid4().hex[:8]}",
        worker_web_port=0,
        sink_batch_seconds=0.2,
        log_level="info",  # worker logs go to the test's tmp dir; a failure prints their tail
    )


@pytest.fixture
def worker_factory(settings: Settings, tmp_path: Path) -> Iterator[callable]:
    workers: list[WorkerProcess] = []

    def make(s: Settings | None = None) -> WorkerProcess:
        w = WorkerProcess(s or settings, tmp_path / f"worker{len(workers)}.log")
        workers.append(w)
        return w

    yield make
    for w in workers:
        if w.process is not None:
            w.stop(signal.SIGKILL)
