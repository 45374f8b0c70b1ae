"""Co2Tracker: one real (offline) codecarbon run, plus the error paths that need no tracker."""

from __future__ import annotations

import sys

import pytest

from eitp_bench.energy.carbon import Co2Tracker
from eitp_bench.errors import UserError


def test_short_offline_run_reports_codecarbons_figures_labelled_as_theirs():
    """The one slow test here (codecarbon takes ~2 s to start): a single tracker instance."""
    codecarbon = pytest.importorskip("codecarbon")
    from codecarbon.input import DataSource

    with Co2Tracker(country_iso_code="fra") as co2:
        sum(i * i for i in range(1_000_000))
    r = co2.result
    assert set(r) == {"emissions_kg", "energy_kwh_codecarbon", "country", "source"}
    assert r["country"] == "FRA"
    assert r["source"] == f"codecarbon {codecarbon.__version__} OfflineEmissionsTracker"
    assert r["emissions_kg"] > 0 and r["energy_kwh_codecarbon"] > 0
    # Offline, emissions are codecarbon's energy × the country's carbon intensity from its own table.
    g_per_kwh = DataSource().get_global_energy_mix_data()["FRA"]["carbon_intensity"]
    assert r["emissions_kg"] / r["energy_kwh_codecarbon"] == pytest.approx(g_per_kwh / 1000, rel=1e-3)


def test_country_defaults_to_env_then_usa(monkeypatch):
    monkeypatch.setenv("EITP_BENCH_COUNTRY", "deu")
    assert Co2Tracker().country == "DEU"
    monkeypatch.delenv("EITP_BENCH_COUNTRY")
    assert Co2Tracker().country == "USA"
    assert Co2Tracker(country_iso_code="JPN").country == "JPN"


def test_bad_country_codes_are_user_errors():
    with pytest.raises(UserError, match="not a 3-letter ISO code"):
        Co2Tracker(country_iso_code="FR")
    pytest.importorskip("codecarbon")
    with pytest.raises(UserError, match="'ZZZ' is not in codecarbon's energy-mix table"):
        with Co2Tracker(country_iso_code="ZZZ"):
            pass


def test_missing_codecarbon_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "codecarbon", None)
    with pytest.raises(UserError) as err:
        with Co2Tracker(country_iso_code="USA"):
            pass
    assert err.value.fix == "pip install 'eitp-bench[co2]'"


def test_codecarbons_import_chatter_is_silenced_and_nothing_else(tmp_path, monkeypatch, capfd):
    """A stand-in codecarbon that says what some versions say at import, plus a message that must stay."""
    import logging
    import sys
    import warnings

    from eitp_bench.energy.carbon import import_codecarbon

    fake = tmp_path / "codecarbon"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import logging, sys, warnings\n"
        "log = logging.getLogger('codecarbon')\n"
        "log.addHandler(logging.StreamHandler(sys.stderr))\n"
        "log.warning('You need to install pymongo to use the MongoDB output')\n"
        "warnings.warn('You need to install pymongo for this backend')\n"
        "log.warning('a real codecarbon warning')\n"
        "__version__ = 'fake'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "codecarbon", raising=False)
    cc_logger = logging.getLogger("codecarbon")
    monkeypatch.setattr(cc_logger, "level", cc_logger.level)  # restored after the test
    cc_logger.setLevel(logging.WARNING)  # an earlier Co2Tracker quietens it to ERROR (setLevel: clears its cache)
    monkeypatch.setattr(cc_logger, "disabled", False)
    monkeypatch.setattr(cc_logger, "handlers", [])  # the real one's handler writes to an earlier test's stderr
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        module = import_codecarbon()
    assert module.__version__ == "fake"
    err = capfd.readouterr().err
    assert "pymongo" not in err and not [w for w in seen if "pymongo" in str(w.message)]
    assert "a real codecarbon warning" in err  # only the import chatter goes
    sys.modules.pop("codecarbon", None)
    cc_logger._cache.clear()
