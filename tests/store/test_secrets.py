"""A PostgreSQL password is never printed: 20 URL forms, every output of every command that takes one.

No server listens on port 1, so every command fails to connect: the error lines are what is checked.
With $EITP_BENCH_TEST_PG_URL set, a real run, its report and `report --json` are checked as well.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

from eitp_bench.cli import main
from eitp_bench.store.url import locate, masked

PW = "Sekr1t-pw"
AT_PW = "p@ss-Sekr1t"  # an unencoded "@" in the password
HOST = "127.0.0.1:1"  # nothing listens: connection refused at once

# (URL, the password it holds)
FORMS = [
    (f"postgresql://u:{PW}@{HOST}/db", PW),
    (f"postgres://u:{PW}@{HOST}/db", PW),
    (f"postgresql+psycopg://u:{PW}@{HOST}/db", PW),
    (f"POSTGRESQL://u:{PW}@{HOST}/db", PW),
    (f"postgresql://u@{HOST}/db?password={PW}", PW),
    (f"postgresql://u@{HOST}/db?sslmode=disable&password={PW}", PW),
    (f"postgresql://u@{HOST}/db?password={PW}&connect_timeout=2", PW),
    (f"postgresql://u:{PW}@{HOST}/db?connect_timeout=2", PW),
    (f"postgresql://u:{AT_PW}@{HOST}/db", AT_PW),
    (f"postgresql://u:{quote(AT_PW, safe='')}@{HOST}/db", AT_PW),
    (f"postgresql://u:a:b-{PW}@{HOST}/db", f"a:b-{PW}"),
    (f"postgresql://u:a/b-{PW}@{HOST}/db", f"a/b-{PW}"),
    (f"postgresql://:{PW}@{HOST}/db", PW),
    (f"postgresql://u:{PW}@[::1]:1/db", PW),
    (f"postgresql://u:{PW}@localhost:1/db", PW),
    (f"postgresql://u:{PW}@{HOST}", PW),  # no database: refused before connecting
    (f"postgresql://u:{PW}@127.0.0.1:notaport/db", PW),  # not a URL SQLAlchemy accepts
    (f"mysql://u:{PW}@{HOST}/db", PW),  # a scheme eitp-bench does not take
    (f"postgresql://u:{AT_PW}@@{HOST}/db", AT_PW + "@"),  # two "@" in a row
    (f"postgresql://u:{PW}@{HOST}/db?password=other-{PW}", PW),  # both forms at once
]


def leaks(text: str, password: str) -> list[str]:
    """The forms of `password` (as given, percent-encoded, any 5-character piece of it) found in text."""
    forms = {password, quote(password, safe="")} | {password[i:i + 5] for i in range(len(password) - 4)}
    return sorted(f for f in forms if f in text)


def test_the_20_forms_are_20():
    assert len(FORMS) == 20 and len({u for u, _ in FORMS}) == 20


@pytest.mark.parametrize("url, password", FORMS)
def test_the_shown_form_and_masked_messages_hide_the_password(url, password):
    assert leaks(masked(f"could not connect to {url}: connection refused"), password) == []
    try:
        location = locate(url)
    except Exception as err:  # refused forms say so without the password
        assert leaks(str(getattr(err, "message", err)) + str(getattr(err, "fix", "")), password) == []
        return
    assert leaks(location.shown, password) == [] and leaks(repr(location), password) == []
    assert location.password is not None  # parsed as a password (masked everywhere), not as part of the host


@pytest.mark.parametrize("url, password", FORMS)
def test_no_command_prints_the_password(url, password, tmp_path, capsys, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    commands = [
        ["report", "--store", url, "--out", str(tmp_path / "r.html")],
        ["report", "--store", url, "--json"],
        ["export", "--store", url, "--format", "jsonl", "--out", str(tmp_path / "export")],
        ["run", "smoke", "--store", url, "--out", str(tmp_path / "out"), "--no-report"],
    ]
    for args in commands:
        code = main(args)
        out, err = capsys.readouterr()
        assert code != 0, args
        assert "Traceback" not in err
        assert leaks(out + err + caplog.text, password) == [], (args, err)
        caplog.clear()
    monkeypatch.setenv("EITP_BENCH_STORE", url)  # the same through the environment
    assert main(["report", "--json"]) != 0
    out, err = capsys.readouterr()
    assert leaks(out + err, password) == []
    for written in tmp_path.rglob("*"):
        if written.is_file():
            assert leaks(written.read_text(errors="replace"), password) == [], written


def test_a_real_run_report_and_json_never_show_a_query_password(tmp_path, capsys, monkeypatch):
    """With a server: the password given as ?password= (the form that leaked everywhere)."""
    from store_backends import require_pg

    require_pg()
    import os

    from sqlalchemy.engine import make_url

    admin = make_url(os.environ["EITP_BENCH_TEST_PG_URL"])
    password = admin.password
    assert password, "the test server has a password"
    url = admin.set(password=None).update_query_dict({"password": password}).render_as_string(hide_password=False)
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\narms: [baseline, eitp-paper]\ntasks: [train]\nrepetitions: 1\n")
    from test_runner import FAKE_WORKER

    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    wrapper = tmp_path / "fake-python"
    wrapper.write_text(f'#!/bin/sh\nexec "{__import__("sys").executable}" "{script}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("FAKE_PID_DIR", str(tmp_path))
    monkeypatch.setenv("EITP_BENCH_WORKER_PYTHON", str(wrapper))
    out_dir = tmp_path / "out"
    assert main(["run", str(suite), "--store", url, "--out", str(out_dir)]) == 0
    assert main(["report", "--store", url, "--json"]) == 0
    out, err = capsys.readouterr()
    assert leaks(out + err, password) == []
    for written in out_dir.rglob("*"):
        if written.is_file():
            assert leaks(written.read_text(errors="replace"), password) == [], written
