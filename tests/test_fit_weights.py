"""The weight-fitting tool (clientpulse.fit_weights): labels of the warning window and the fit itself."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from clientpulse.fit_weights import example_label, examples, fit_nonnegative_logistic
from producers.generator import ClientLabel

START = datetime(2025, 1, 1, tzinfo=UTC)


def label(churns: bool, start_day: float = 100, last_day: float = 160) -> ClientLabel:
    return ClientLabel(
        client_id="C1",
        size="small",
        industry="ecommerce",
        seasonal=False,
        churns=churns,
        churn_starts_at=START + timedelta(days=start_day) if churns else None,
        churned_at=START + timedelta(days=last_day) if churns else None,
    )


def day(n: float) -> float:
    return (START + timedelta(days=n)).timestamp() / 86_400


def test_the_warning_window_runs_from_two_weeks_before_the_decline_to_three_weeks_before_the_last_order() -> None:
    churner = label(True, start_day=100, last_day=160)
    assert example_label(churner, day(85)) is None  # between "long before" and the window: left out
    assert example_label(churner, day(86)) == 1
    assert example_label(churner, day(139)) == 1
    assert example_label(churner, day(140)) is None  # too late to be a warning
    assert example_label(churner, day(54)) == 0  # long before the decline: a healthy day
    assert example_label(label(False), day(120)) == 0


def test_the_fit_gives_weight_to_what_separates_and_none_to_what_hurts() -> None:
    rng = random.Random(3)
    x, y = [], []
    for _ in range(4000):
        churn = rng.random() < 0.2
        telling = rng.uniform(0.5, 1.0) if churn and rng.random() < 0.8 else rng.uniform(0, 0.3)
        noise = rng.random()
        misleading = rng.uniform(0, 0.2) if churn else rng.uniform(0, 1)  # higher in healthy clients
        x.append((telling, noise, misleading))
        y.append(int(churn))
    weights, _ = fit_nonnegative_logistic(x, y, iterations=1500)
    telling_w, noise_w, misleading_w = weights
    assert telling_w > 3 and noise_w < 0.5 * telling_w
    assert misleading_w == 0.0  # non-negative: a signal may only add risk


def test_examples_skip_the_warm_up_and_unlabelled_days() -> None:
    churner = label(True, start_day=100, last_day=160)
    healthy = ClientLabel(**{**churner.__dict__, "client_id": "C2", "churns": False})
    first = int(day(0))
    rows = [(c, first + d, (float(d),)) for d in range(200) for c in ("C1", "C2")]
    x, y = examples([churner, healthy], rows)
    # from day 60 on: the churner's window (86..139) is positive, its days 60..85 and 140.. left out;
    # every healthy day counts as negative
    assert [v[0] for v, t in zip(x, y, strict=True) if t == 1] == [float(d) for d in range(86, 140)]
    assert sum(1 for t in y if t == 0) == 140
    assert min(v[0] for v in x) == 60.0


def test_one_class_only_is_refused() -> None:
    with pytest.raises(ValueError, match="both"):
        fit_nonnegative_logistic([(0.1,), (0.2,)], [0, 0])
