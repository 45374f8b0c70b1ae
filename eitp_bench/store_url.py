"""Where a store lives: a SQLite file (the embedded default) or a PostgreSQL database (a fleet store).

`locate(path_or_url)` turns `--store` / $EITP_BENCH_STORE into a `StoreLocation`. Its `shown` form is
the only one that may be printed or logged: a password in a PostgreSQL URL becomes `***`, and
`masked(text)` removes it from any message (a driver error, a traceback line) before it is shown.
Prefer no password in the URL at all: libpq reads PGPASSWORD and ~/.pgpass.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from eitp_bench.errors import UserError

DEFAULT_STORE = Path("eitp-results") / "results.sqlite"
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
CONNECT_TIMEOUT_S = 10
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s]*)@")


def masked(text: str, password: Optional[str] = None) -> str:
    """`text` with any URL password, and this password wherever it appears, replaced by ***."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))
    if password:
        text = text.replace(password, "***")
    return text


@dataclass(frozen=True)
class StoreLocation:
    kind: str  # "sqlite" or "postgresql"
    path: Optional[Path] = None  # sqlite
    url: Optional[str] = field(default=None, repr=False)  # postgresql, SQLAlchemy form, password included
    password: Optional[str] = field(default=None, repr=False)

    @property
    def shown(self) -> str:
        """What messages, logs and reports may show: the path, or the URL with its password masked."""
        return str(self.path) if self.kind == "sqlite" else masked(self.url.replace("+psycopg", ""), self.password)

    def __str__(self) -> str:
        return self.shown


def locate(path_or_url: str | os.PathLike | None) -> StoreLocation:
    """A path, sqlite:///relative, sqlite:////absolute, or postgresql://user@host:port/db; None → default."""
    if path_or_url is None:
        path_or_url = os.environ.get("EITP_BENCH_STORE") or DEFAULT_STORE
    text = os.fspath(path_or_url)
    if "://" not in text:
        return StoreLocation("sqlite", path=Path(text).expanduser())
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise UserError(
                f"store URL {text!r} has no file path",
                fix="write sqlite:///relative/results.sqlite or sqlite:////absolute/results.sqlite",
            )
        return StoreLocation("sqlite", path=Path(rest[1:]).expanduser())  # a 4th slash = absolute
    if scheme in POSTGRES_SCHEMES:
        return _postgres(text, rest)
    raise UserError(
        f"store URL {masked(text)!r} uses scheme {scheme!r}; eitp-bench stores are SQLite files or PostgreSQL databases",
        fix="pass a file path, sqlite:///path/to/results.sqlite, or postgresql://user@host:5432/database",
    )


def _postgres(text: str, rest: str) -> StoreLocation:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url("postgresql+psycopg://" + rest)
    except (ArgumentError, ValueError):
        raise UserError(f"store URL {masked(text)!r} is not a valid PostgreSQL URL",
                        fix="write postgresql://user@host:5432/database") from None
    if not url.database:
        raise UserError(f"store URL {masked(text)!r} names no database",
                        fix="add the database: postgresql://user@host:5432/eitp_bench (create it with createdb)")
    return StoreLocation("postgresql", url=url.render_as_string(hide_password=False), password=url.password)


def connection_error(location: StoreLocation, err: BaseException) -> UserError:
    """One clear message, password masked, for a PostgreSQL server we could not use."""
    reason = masked(str(getattr(err, "orig", None) or err), location.password).strip().splitlines()
    detail = reason[0] if reason else type(err).__name__
    lower = " ".join(reason).lower()
    where = location.shown
    if "password authentication failed" in lower or "no password supplied" in lower:
        return UserError(f"PostgreSQL refused the login for {where}: {detail}",
                         fix="check the user and password (put the password in ~/.pgpass or PGPASSWORD, "
                             "not on the command line)")
    if "does not exist" in lower and "database" in lower:
        return UserError(f"the database of {where} does not exist on that server: {detail}",
                         fix="create it (createdb -h HOST -U USER DBNAME, or CREATE DATABASE in psql), "
                             "then run again; eitp-bench creates its tables itself")
    if "role" in lower and "does not exist" in lower:
        return UserError(f"PostgreSQL has no user as named in {where}: {detail}",
                         fix="create the role (createuser) or use an existing one in the URL")
    if any(w in lower for w in ("connection refused", "could not translate host", "timeout", "no route to host",
                                "name or service not known", "network is unreachable", "could not connect")):
        return UserError(f"cannot reach the PostgreSQL server of {where}: {detail}",
                         fix="check the host and port, that the server runs (pg_isready -h HOST -p PORT) "
                             "and that a firewall lets this machine in")
    return UserError(f"cannot use the PostgreSQL store {where}: {detail}",
                     fix="check the URL, the server's log, and that the user may create tables in that database")
