"""Store tests run on both backends: a SQLite file, and a fresh PostgreSQL database per test.

PostgreSQL comes from $EITP_BENCH_TEST_PG_URL, a URL of a server where that user may CREATE
DATABASE (`.ci/postgres.sh start` starts a throwaway one and prints it). Without it the PostgreSQL
cases skip, saying why; they never pass silently. Import the fixtures into a test module:

    from store_backends import pg_url, store_url  # noqa: F401
"""

from __future__ import annotations

import os
import uuid

import pytest

PG_ENV = "EITP_BENCH_TEST_PG_URL"
NO_PG = f"no PostgreSQL: set {PG_ENV} to a server URL (eval \"$(.ci/postgres.sh start)\" starts one)"


def admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(sql)


def require_pg() -> None:
    """Skip the calling test, saying why, when no PostgreSQL server is configured."""
    if not admin_url():
        pytest.skip(NO_PG)


@pytest.fixture
def pg_url():
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    require_pg()
    name = f"eitp_test_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url(), name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A new store location on each backend: a SQLite path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "results.sqlite")
    return request.getfixturevalue("pg_url")
