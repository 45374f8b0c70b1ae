"""Nightly smoke-like records: one arm's metric set per night, nights one day apart, each night on its
own git commit, with an optional planted slowdown (a drop of tokens_per_s) from a given night on."""

from __future__ import annotations

import numpy as np
from synthetic_store import record

DAY_MINUTES = 24 * 60


def nightly_records(nights: int = 30, *, slow_from: int | None = 20, slowdown: float = 0.10, seed: int = 0,
                    profile: str = "hp-test-cpu", arm: str = "baseline", noise: float = 0.01,
                    suite: str = "smoke", first_night: int = 0):
    """Night k (1-based) runs train, lm and generate; from night `slow_from` on, tokens_per_s is
    (1 − slowdown) × its level. Only that metric moves (joules_per_token stays), so exactly one series
    holds the planted regression."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(first_night + 1, first_night + nights + 1):
        slow = slow_from is not None and k >= slow_from
        speed = 100.0 * (1 - slowdown if slow else 1.0)
        jitter = lambda: 1 + rng.normal(0, noise)  # noqa: E731
        started = (k - 1) * DAY_MINUTES
        nightly = [
            record(arm, "train", 0, {"step_s": 0.25 * jitter(), "train_joules": 1000 * jitter(),
                                     "final_val_loss": 3.0 * (1 + rng.normal(0, noise / 10))},
                   suite=suite, profile=profile, started=started, energy_window="train", energy_joules=1000.0),
            record(arm, "lm", 0, {"val_loss": 3.0 * (1 + rng.normal(0, noise / 10))}, suite=suite, profile=profile,
                   started=started + 5),
            record(arm, "generate", 0, {"tokens_per_s": speed * jitter(),
                                        "joules_per_token": 0.5 * jitter()},
                   suite=suite, profile=profile, started=started + 10),
        ]
        for r in nightly:
            r.provenance.git_commit = f"{k:04d}c0ffee"  # one commit per night
        out += nightly
    return out
