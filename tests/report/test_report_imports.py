"""Rendering a report imports torch, scipy.stats and pyplot only where a section needs them.

Importing torch costs about a second and a half on the 2-core machine, a fixed cost on every `report`.
The E_min section needs only metric names (theory/param_entropy.py imports torch inside the functions
that handle tensors) and the derivation section imports theory/derivation.py only when it draws.
scipy.stats costs about half a second: the statistics a report runs take their t, beta and binomial
figures from scipy.special (analysis/stats/distributions.py) and their mid-ranks from numpy. The figures
are matplotlib Figures made without pyplot (report/plots.py).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from eitp_bench.store import Store
from synthetic_store import eitp_records

REPO = Path(__file__).resolve().parents[2]


def test_a_report_without_derivation_runs_does_not_import_torch(tmp_path):
    recs = eitp_records(n_reps=2)
    assert any(m.name.startswith("e_min_j@") for r in recs for m in r.metrics)  # the E_min section is drawn
    with Store.open(tmp_path / "s.sqlite") as store:
        store.add_many(recs)
    script = textwrap.dedent(f"""
        import sys
        from eitp_bench.report.build import build_report
        page = build_report({str(tmp_path / "s.sqlite")!r}, n_resamples=200)
        assert "E<sub>min</sub>" in page or "E_min" in page, "no E_min section"
        print("torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_a_report_that_judges_claims_imports_neither_scipy_stats_nor_pyplot(tmp_path):
    from eitp_bench.analysis.stats import distributions

    if distributions._binom_sf is None:  # a scipy without the private ufuncs: its beta/binomial come from scipy.stats
        pytest.skip("this scipy has no scipy.special._ufuncs._beta_ppf/_binom_ppf/_binom_sf")
    with Store.open(tmp_path / "s.sqlite") as store:
        store.add_many(eitp_records())
    script = textwrap.dedent(f"""
        import sys
        from eitp_bench.analysis import stats
        from eitp_bench.report.build import build_report

        called = set()
        for name in ("t_ppf", "t_sf", "beta_ppf", "binom_ppf", "binom_sf"):  # the figures scipy.stats gave
            def spy(*args, _f=getattr(stats.distributions, name), _n=name):
                called.add(_n)
                return _f(*args)
            setattr(stats.distributions, name, spy)
            for module in (stats, stats.counts, stats.series, stats.planning):
                if hasattr(module, name):
                    setattr(module, name, spy)
        page = build_report({str(tmp_path / "s.sqlite")!r}, n_resamples=200)
        assert page.count("<svg") >= 5 and "VERIFIED" in page, "no figures or no judged claim"
        print(sorted(called), "scipy.stats" in sys.modules, "matplotlib.pyplot" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    # the report asked for t quantiles and tails, a Clopper-Pearson bound, a binomial median interval and a
    # sign test, and still never loaded scipy.stats or pyplot
    assert out.stdout.strip() == "['beta_ppf', 'binom_ppf', 'binom_sf', 't_ppf', 't_sf'] False False"
