"""A fleet store survives a blip: transient PostgreSQL errors are retried, a lasting outage is one line.

A server restart, a dropped connection or a serialization failure should not end an overnight run.
`publish` stores one repetition's records, retrying a transient failure (`is_transient`) up to
TRIES times with doubling waits (RETRY_DELAYS_S), never past RETRY_BUDGET_S; each attempt is one
transaction, so a retry never stores half a repetition, and the store ignores a run_id it already
holds, so a commit whose answer was lost is not stored twice. Meanwhile the records stay in the
run's folder (the runner removes its staging folder only after the store took them), so a lasting
outage loses nothing: `StoreUnavailable` ends the run and `--resume` publishes them later.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterable

from eitp_bench.errors import UserError

RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0)  # between the TRIES attempts: 15 s of waiting in all
TRIES = len(RETRY_DELAYS_S) + 1
RETRY_BUDGET_S = 60.0  # no retry starts later than this after the first attempt

# SQLSTATEs worth a retry: class 08 (connection exception), admin/crash shutdown, cannot connect now,
# too many connections, serialization failure, deadlock
TRANSIENT_SQLSTATES = ("57P01", "57P02", "57P03", "53300", "40001", "40P01")
# what libpq says when the connection is lost or refused (no SQLSTATE then)
TRANSIENT_WORDS = ("connection refused", "could not connect", "server closed the connection", "terminating connection",
                   "connection reset", "the database system is shutting down", "the database system is starting up",
                   "consuming input failed", "connection is closed", "the connection is lost", "broken pipe",
                   "ssl syscall error", "no connection to the server", "timeout expired", "connection timed out")


class StoreUnavailable(UserError):
    """The store failed in a way a later attempt may not (the server is down or restarting)."""


def is_transient(err: BaseException) -> bool:
    """True for a PostgreSQL error that a retry may clear: a lost or refused connection, a shutdown,
    a serialization failure or deadlock. Never for bad data, a missing table or a permission."""
    orig = getattr(err, "orig", None) or err
    state = getattr(orig, "sqlstate", None)
    if state:
        return state.startswith("08") or state in TRANSIENT_SQLSTATES
    if getattr(err, "connection_invalidated", False):
        return True
    text = str(orig).lower()
    return any(word in text for word in TRANSIENT_WORDS)


def publish(store, records: Iterable, *, sleep: Callable[[float], None] = time.sleep,
            clock: Callable[[], float] = time.monotonic, note: Callable[[str], None] | None = None) -> int:
    """store.add_many(records), retried on StoreUnavailable; returns how many were new."""
    batch = list(records)
    say = note or (lambda line: print(f"eitp-bench: {line}", file=sys.stderr, flush=True))
    start = clock()
    for attempt, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
        try:
            return store.add_many(batch)
        except StoreUnavailable as err:
            waited = clock() - start
            if delay is None or waited + delay > RETRY_BUDGET_S:
                raise StoreUnavailable(f"{err.message} (gave up after {attempt} tries over {waited:.0f} s)",
                                       fix=err.fix) from None
            say(f"the store failed ({err.message}); try {attempt + 1} of {TRIES} in {delay:g} s")
            sleep(delay)
    raise AssertionError("unreachable")  # the last attempt returns or raises
