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
# userinfo up to the LAST "@" before the host (a password may hold an unencoded "@" or "/")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>\S*?)@"
                       r"(?=[^@\s/?#]*(?:[/?#\s'\"]|$))")
# password=… as a URL query parameter or a libpq keyword (a driver may echo its connection string)
_KEYWORD = re.compile(r"(?i)(?P<key>\bpassword\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|[^&\s'\"]+)")


def masked(text: str, password: Optional[str] = None) -> str:
    """`text` with any URL password (userinfo or `password=`), and this password wherever it appears
    (as given or percent-encoded), replaced by ***."""
    from urllib.parse import quote, quote_plus

    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))
    text = _KEYWORD.sub(lambda m: f"{m['key']}***", text)
    if password:
        for form in sorted({password, quote(password, safe=""), quote_plus(password)}, key=len, reverse=True):
            text = text.replace(form, "***")
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
        if self.kind == "sqlite":
            return str(self.path)
        from sqlalchemy.engine import make_url

        url = make_url(self.url).set(drivername="postgresql")
        return masked(url.render_as_string(hide_password=True), self.password)

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
    """Parsed once, with SQLAlchemy's make_url; every shown form comes from it (StoreLocation.shown)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url("postgresql+psycopg://" + _encoded_userinfo(rest))
        query_password = url.query.get("password")
        if query_password is not None:  # ?password=…: kept as the URL's password, so it is masked like one
            url = url.difference_update_query(["password"])
            if url.password is None:
                url = url.set(password=query_password if isinstance(query_password, str) else query_password[-1])
    except (ArgumentError, ValueError):
        raise UserError(f"store URL {masked(text)!r} is not a valid PostgreSQL URL",
                        fix="write postgresql://user@host:5432/database") from None
    if not url.database:
        raise UserError(f"store URL {masked(text)!r} names no database",
                        fix="add the database: postgresql://user@host:5432/eitp_bench (create it with createdb)")
    return StoreLocation("postgresql", url=url.render_as_string(hide_password=False), password=url.password)


def _encoded_userinfo(rest: str) -> str:
    """`rest` (after scheme://) with user and password percent-encoded when the password holds an
    unencoded "@": the userinfo ends at the last "@" before the host, not the first."""
    from urllib.parse import quote, unquote

    netloc, sep, tail = rest.partition("/")
    if netloc.count("@") < 2:
        return rest
    userinfo, _, host = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    encode = lambda part: quote(unquote(part), safe="")  # noqa: E731 (an already-encoded part stays one)
    return f"{encode(user)}{colon}{encode(password)}@{host}{sep}{tail}"


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
