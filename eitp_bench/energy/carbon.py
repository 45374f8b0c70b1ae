"""Optional CO2 estimate through CodeCarbon's OfflineEmissionsTracker (no network).

    with Co2Tracker(country_iso_code="FRA") as co2:
        train()
    co2.result  # {"emissions_kg": …, "energy_kwh_codecarbon": …, "country": "FRA", "source": …}

CodeCarbon makes its own energy figure (RAPL or TDP estimates, its own GPU reading). We keep it as a
peer's figure, labelled `energy_kwh_codecarbon`, and never use it as our joules.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from typing import Any, Optional

from eitp_bench.errors import UserError

DEFAULT_COUNTRY = "USA"
FIX_CODECARBON = "pip install 'eitp-bench[co2]'"


def default_country() -> str:
    return os.environ.get("EITP_BENCH_COUNTRY") or DEFAULT_COUNTRY


def country_known(country: str) -> bool:
    """Whether codecarbon's offline energy-mix table has this 3-letter ISO code (True when this
    codecarbon has no such table: it judges the code itself). Needs codecarbon installed."""
    try:
        from codecarbon.input import DataSource

        known = DataSource().get_global_energy_mix_data()
    except Exception:
        return True
    return country.upper() in known


# What codecarbon (some versions) says at import about optional back-ends we never use.
IMPORT_CHATTER = ("You need to install pymongo",)


def import_codecarbon():
    """`import codecarbon`, without its import-time chatter about optional back-ends (only those
    messages, and only during the import: its later warnings and everything else's still show)."""
    import importlib

    class _Chatter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not any(text in record.getMessage() for text in IMPORT_CHATTER)

    chatter = _Chatter()
    handlers = [h for h in logging.getLogger().handlers]
    loggers = [logging.getLogger(), logging.getLogger("codecarbon")]
    for target in [*loggers, *handlers]:
        target.addFilter(chatter)
    try:
        with warnings.catch_warnings():
            for text in IMPORT_CHATTER:
                warnings.filterwarnings("ignore", message=f".*{text}")
            return importlib.import_module("codecarbon")
    finally:
        for target in [*loggers, *handlers]:
            target.removeFilter(chatter)


def codecarbon_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("codecarbon") is not None


class Co2Tracker:
    """A context manager around OfflineEmissionsTracker; `.result` is set on exit."""

    def __init__(self, country_iso_code: Optional[str] = None, measure_power_secs: float = 15.0):
        self.country = (country_iso_code or default_country()).upper()
        if len(self.country) != 3 or not self.country.isalpha():
            raise UserError(
                f"CO2 country {self.country!r} is not a 3-letter ISO code",
                fix="pass e.g. --country FRA, or set EITP_BENCH_COUNTRY=DEU",
            )
        self.measure_power_secs = measure_power_secs
        self.result: Optional[dict[str, Any]] = None
        self._tracker: Any = None
        self._tmp: Optional[tempfile.TemporaryDirectory] = None

    def __enter__(self) -> "Co2Tracker":
        try:
            codecarbon = import_codecarbon()
            from codecarbon import OfflineEmissionsTracker
        except ImportError as err:
            raise UserError(f"codecarbon is not installed ({err}): CO2 estimates need it", fix=FIX_CODECARBON) from err
        self._version = getattr(codecarbon, "__version__", "?")
        self._check_country()
        logging.getLogger("codecarbon").setLevel(logging.ERROR)  # its init chatter comes before log_level applies
        self._tmp = tempfile.TemporaryDirectory(prefix="eitp-bench-co2-")
        try:
            with warnings.catch_warnings():  # codecarbon 3 deprecates save_to_file; False is what we want
                warnings.simplefilter("ignore", DeprecationWarning)
                self._tracker = OfflineEmissionsTracker(
                    country_iso_code=self.country,
                    log_level="error",
                    save_to_file=False,
                    output_dir=self._tmp.name,
                    measure_power_secs=self.measure_power_secs,
                    allow_multiple_runs=True,  # parallel runs on one machine must not trip its lock file
                )
        except Exception:
            self._tmp.cleanup()
            raise
        self._tracker.start()
        return self

    def _check_country(self) -> None:
        """CodeCarbon only logs an unknown country and carries on; we refuse it instead."""
        if not country_known(self.country):
            raise UserError(
                f"CO2 country {self.country!r} is not in codecarbon's energy-mix table",
                fix="use a 3-letter ISO code it knows (e.g. USA, FRA, DEU), or set EITP_BENCH_COUNTRY",
            )

    def __exit__(self, *exc: Any) -> None:
        try:
            emissions_kg = self._tracker.stop()
            data = getattr(self._tracker, "final_emissions_data", None)
            self.result = {
                "emissions_kg": float(emissions_kg) if emissions_kg is not None else None,
                "energy_kwh_codecarbon": float(data.energy_consumed) if data is not None else None,
                "country": self.country,
                "source": f"codecarbon {self._version} OfflineEmissionsTracker",
            }
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
