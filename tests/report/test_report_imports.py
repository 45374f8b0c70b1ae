"""Rendering a report imports torch only where a section needs it.

Importing torch costs about a second and a half on the 2-core machine, a fixed cost on every `report`.
The E_min section needs only metric names (theory/param_entropy.py imports torch inside the functions
that handle tensors) and the derivation section imports theory/derivation.py only when it draws.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

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
