"""Store v12 (store/hardware_values.py): writers store each distinct hardware mapping or list once, also when
two PostgreSQL writers store the same new value at the same time."""

from __future__ import annotations

import threading
import time

from eitp_bench.store import Store
from eitp_bench.store.hardware_values import Split
from store_backends import pg_url  # noqa: F401  (fixture)
from test_store import make_record


def _with_state(record, state: dict):
    hardware = {**record.provenance.hardware, "state": state}
    return record.model_copy(update={"provenance": record.provenance.model_copy(update={"hardware": hardware})})


def test_a_value_another_writer_is_storing_is_waited_for_and_shared(pg_url):  # noqa: F811
    """Writer A has stored a value and not committed; writer B stores a run with the same value: B's insert
    waits for A (the unique digest), skips the row A committed and refers to it. One row, both runs whole."""
    import psycopg

    state = {"driver_version": "550.54.15", "gpus": [{"uuid": "GPU-1", "power_limit_w": 700.0}]}
    first, second = _with_state(make_record(1), state), _with_state(make_record(2), state)
    Store.open(pg_url).close()  # the layout
    split = Split(first.provenance.model_dump_json())
    digest = split.refs["state"]
    key, text = split.values[digest]
    errors: list = []
    with psycopg.connect(pg_url) as writer_a:
        writer_a.execute("INSERT INTO hardware_values (digest, key, value_json) VALUES (%s, %s, %s)", (digest, key, text))

        def writer_b():
            try:
                with Store.open(pg_url) as store:
                    store.add(second)
            except Exception as err:  # reported below, in the test's thread
                errors.append(err)

        thread = threading.Thread(target=writer_b)
        thread.start()
        with psycopg.connect(pg_url, autocommit=True) as watch:  # B waits on A's row lock before A commits
            for _ in range(300):
                waiting = watch.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                        "AND datname = current_database()").fetchone()[0]
                if waiting or not thread.is_alive():
                    break
                time.sleep(0.05)
        assert waiting == 1, "writer B never waited for writer A's uncommitted value"
        writer_a.commit()
    thread.join(timeout=60)
    assert not thread.is_alive() and not errors
    with Store.open(pg_url) as store:
        store.add(first)
        assert store.records() == [second, first]
        with store._tx() as conn:
            rows = conn.exec_driver_sql("SELECT count(*) FROM hardware_values WHERE key = 'state'").scalar_one()
    assert rows == 1
