"""The crash drill at a larger size than CI runs: `python -m benchmarks.crash_run --clients 1000 --kills 20`.

Starts a local broker, publishes a generated history, kills `clientpulse worker` with SIGKILL the given
number of times (at random progress and during recovery), restarts it each time, and then compares
the raw tables, every profile, the KPI views and the alert ids with the truth — the same checks as
tests/test_crash_safety.py. Exit 0 when everything matched, 1 with the first difference otherwise.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from clientpulse.broker import LocalBroker
from clientpulse.settings import Settings
from tests.conftest import WorkerProcess
from tests.test_crash_safety import drill


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="Work directory to keep (default: a temporary one).")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="clientpulse-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    workers: list[WorkerProcess] = []
    started = time.monotonic()
    with LocalBroker(log_path=work / "broker.log") as broker:
        settings = Settings(
            data_dir=work / "data", kafka_bootstrap=broker.bootstrap, app_id=f"crash-{uuid.uuid4().hex[:8]}",
            worker_web_port=0, sink_batch_seconds=0.2, log_level="info",
        )  # fmt: skip

        def make() -> WorkerProcess:
            workers.append(WorkerProcess(settings, work / f"worker{len(workers)}.log"))
            return workers[-1]

        try:
            report = drill(settings, make, args.clients, args.days, args.seed, args.kills)
        except AssertionError as exc:
            print(f"crash drill FAILED after {time.monotonic() - started:.0f}s: {str(exc)[:2000]}", file=sys.stderr)
            print(f"logs: {work}", file=sys.stderr)
            return 1
        finally:
            for w in workers:
                if w.process is not None and w.process.poll() is None:
                    w.stop(signal.SIGKILL)
    print("\n".join(report))
    print(f"crash drill passed: {args.kills} kills survived in {time.monotonic() - started:.0f}s (logs: {work})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
