"""Refit the churn signal weights on generated histories: `python -m clientpulse.fit_weights --seeds 7 11`.

How the default weights in `streams.risk.DEFAULT_WEIGHTS` were made (docs/alerts.md). Every client
is assessed once a day of event time; a day is a positive example when the client churns and the day
lies in its warning window (from `WINDOW_BEFORE_DECLINE` days before its decline starts to
`WINDOW_BEFORE_LAST_ORDER` days before its last order), a negative one for every day of a healthy
client and for a churner's days long before its decline, and is left out otherwise. A logistic
regression with non-negative coefficients (a signal may only ever add risk) on the signal strengths
gives log-odds per unit of strength, which is what `RiskRules.weights` holds. On real data, feed it
the company's own churn history instead of the generator's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime

from clientpulse.evaluate import event_time_batches
from producers.generator import ClientLabel, generate
from streams.assessing import as_datetime
from streams.profile import snapshot
from streams.profiling import profile_batch
from streams.risk import SIGNALS, RiskRules, signals
from streams.tiering import TierRules

DAY = 86_400
WINDOW_BEFORE_DECLINE = 14
WINDOW_BEFORE_LAST_ORDER = 21
HEALTHY_BEFORE_DECLINE = 45
WARM_UP_DAYS = 60
"""The first days of a history have no baseline: every signal is quiet, which teaches nothing."""


def daily_strengths(clients: int, days: int, seed: int, rules: RiskRules) -> tuple[list[ClientLabel], list[tuple]]:
    """(client_id, day, strengths by SIGNALS order) for every client at the end of every day."""
    history = generate(clients=clients, days=days, seed=seed)
    profiles: dict = {}
    rows: list[tuple] = []
    tiers = TierRules()
    for batch, end in event_time_batches(history.events, DAY):
        profiles.update(profile_batch(batch, profiles.get, tiers).profiles)
        at = as_datetime(end)
        for client_id, profile in profiles.items():
            found = {s.code: s.strength for s in signals(profile, snapshot(profile, at), rules)}
            rows.append((client_id, end // DAY, tuple(found.get(code, 0.0) for code in SIGNALS)))
    return history.labels, rows


def _day(t: datetime) -> float:
    return t.timestamp() / DAY


def example_label(label: ClientLabel, day: float) -> int | None:
    """1 inside a churner's warning window, 0 for healthy days, None for days that teach nothing."""
    if not label.churns or label.churn_starts_at is None or label.churned_at is None:
        return 0
    start, last = _day(label.churn_starts_at), _day(label.churned_at)
    if start - WINDOW_BEFORE_DECLINE <= day <= last - WINDOW_BEFORE_LAST_ORDER:
        return 1
    return 0 if day < start - HEALTHY_BEFORE_DECLINE else None


def examples(labels: Iterable[ClientLabel], rows: Sequence[tuple]) -> tuple[list[Sequence[float]], list[int]]:
    by_id = {lb.client_id: lb for lb in labels}
    first = min(r[1] for r in rows)
    x, y = [], []
    for client_id, day, strengths in rows:
        if day < first + WARM_UP_DAYS:
            continue
        target = example_label(by_id[client_id], day)
        if target is not None:
            x.append(strengths)
            y.append(target)
    return x, y


def fit_nonnegative_logistic(
    x: Sequence[Sequence[float]], y: Sequence[int], l2: float = 1e-3, iterations: int = 4000, rate: float = 0.5
) -> tuple[list[float], float]:
    """Class-balanced logistic regression by projected gradient descent; coefficients kept >= 0."""
    import numpy as np  # a dev tool: numpy comes with chdb's pandas, the pipeline itself does not need it

    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    scale = xs.std(axis=0) + 1e-9
    z = xs / scale
    positives = ys.sum()
    if positives == 0 or positives == len(ys):
        raise ValueError("need both churn-window and healthy examples")
    weight = np.where(ys == 1, len(ys) / (2 * positives), len(ys) / (2 * (len(ys) - positives)))
    w, b = np.zeros(z.shape[1]), 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        g = (p - ys) * weight
        w = np.maximum(w - rate * (z.T @ g / len(ys) + l2 * w), 0.0)
        b -= rate * g.mean()
    return [float(v) for v in w / scale], float(b)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args(argv)
    rules = RiskRules()
    x: list[Sequence[float]] = []
    y: list[int] = []
    for seed in args.seeds:
        labels, rows = daily_strengths(args.clients, args.days, seed, rules)
        more_x, more_y = examples(labels, rows)
        x += more_x
        y += more_y
        print(f"seed {seed}: {len(more_y)} examples, {sum(more_y)} in a churn window", file=sys.stderr)
    weights, intercept = fit_nonnegative_logistic(x, y)
    for code, w in zip(SIGNALS, weights, strict=True):
        print(f"{code:20s} {w:6.2f}   (default {rules.weights[code]:.2f})")
    print(f"{'intercept':20s} {intercept:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
