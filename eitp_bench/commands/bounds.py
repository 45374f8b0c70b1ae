"""`eitp-bench bounds`: thermodynamic bounds and quantities of a model, without running a suite."""

from __future__ import annotations

import json
import math
import os
from typing import Optional

import typer

from eitp_bench.errors import UserError

SIZES = {"tiny": 256, "small": 1024}  # size → n_positions (GPT-2's 50,257-token vocabulary)


def _temperature(text: str) -> float:
    try:
        t = float(text)
    except ValueError:
        raise UserError(f"--temperature {text!r} is not a number of kelvin",
                        fix="give the heat-sink temperature in kelvin, e.g. --temperature 300") from None
    if not math.isfinite(t) or t <= 0:
        raise UserError(f"--temperature {text!r} must be a positive number of kelvin",
                        fix="give the heat-sink temperature in kelvin (> 0), e.g. --temperature 300")
    return t


def _load_model(spec: str):
    if spec in SIZES:
        from eitp_bench.workloads.models import build_model

        return build_model(spec, vocab_size=50257, n_positions=SIZES[spec], seed=0).eval()
    if not os.path.isdir(spec):
        raise UserError(f"--model {spec!r} is neither tiny, small nor a local model directory",
                        fix="use --model tiny, --model small, or the path of a directory saved with save_pretrained")
    from transformers import GPT2LMHeadModel

    try:
        return GPT2LMHeadModel.from_pretrained(spec, local_files_only=True).eval()
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load a GPT-2 model from {spec!r}: {str(err).splitlines()[0]}",
                        fix="give a directory with config.json and model weights of a GPT-2 model") from err


def _load_profile(name: Optional[str]):
    if name is None:
        return None
    if os.path.isfile(name):
        import yaml

        with open(name) as f:
            data = yaml.safe_load(f)
        if not isinstance(data, dict):
            raise UserError(f"profile file {name!r} is not a YAML mapping", fix="give a hardware profile YAML file")
        return data
    from eitp_bench.hardware.profiles import find_profile

    return find_profile(name)[1].model_dump()  # by id (file stem) or display name; a UserError lists them


def _fmt(v) -> str:
    from eitp_bench.display import cell

    return f"{v:.4g}" if isinstance(v, float) and v == v else cell(v)


def _print_tables(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = result["temperature"]["value"]
    table = Table(title=f"Thermodynamic bounds — {result['model']['class']}, "
                        f"{result['model']['parameters']:,} parameters ({result['model']['storage']}), T = {t:g} K")
    table.add_column("quantity", overflow="fold")
    for col in ("value", "unit", "ours?", "source"):
        table.add_column(col)
    rows = [(q, "") for q in [result["constants"]["landauer_j_per_bit"], *result["landauer_per_inference"]]]
    for storage in result["e_min"]["by_storage"].values():
        # A degenerate histogram's figure is shown only with the word beside it.
        label = " (degenerate)" if storage["degenerate"] else ""
        rows += [(storage["h_bits_per_param"], label), (storage["e_min_j"], label)]
    rows += [(q, "") for q in [result["e_min"]["paper_t_1_misuse"]["j_per_bit"], *result["floors"]["quantities"]]]
    for q, label in rows:
        table.add_row(q["name"] + label, _fmt(q["value"]), q["unit"], "yes" if q["operationalisation"] else "no",
                      q["source"])
    console.print(table)

    ladder = Table(title="Energy ladder")
    for col in ("rung", "J", "per", "× Landauer", "× previous"):
        ladder.add_column(col)
    for r in result["ladder"]:
        ladder.add_row(r["name"], _fmt(r["joules"]), r["per"], _fmt(r["ratio_to_landauer"]), _fmt(r["ratio_to_previous"]))
    console.print(ladder)

    lip = Table(title="Lipschitz profile per block (critical value 1) — " + result["lipschitz"]["withdrawn"])
    for col in ("block", "‖J‖₂", "finite-difference ρ", "‖T(h)−h‖/‖h‖"):
        lip.add_column(col)
    for b in result["lipschitz"]["blocks"]:
        lip.add_row(str(b["block"]), _fmt(b["jacobian_spectral_norm"]["value"]),
                    _fmt(b["finite_difference_ratio"]["value"]), _fmt(b["relative_update"]))
    console.print(lip)
    for extra in _more_tables(result):
        console.print(extra)
    e_min = result["e_min"]
    degenerate = [s for s, v in e_min["by_storage"].items() if v["degenerate"]]
    notes = [f"E_min headline over {e_min['primary_storage']} storage codes (floors and theorems use it)"]
    if degenerate:
        notes.append(f"{', '.join(degenerate)}: degenerate — {e_min['degenerate_note']}")
    for note in (result["transitions"]["notes"] + [e_min["binning_note"]] + notes
                 + result["floors"]["assumptions"]):
        console.print(f"• {note}", highlight=False, markup=False)


def _table(title: str, columns: list[str], rows: list[list]):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))  # E[z²] is text, not a rich markup tag
    for col in columns:
        table.add_column(escape(col), overflow="fold")
    for row in rows:
        table.add_row(*[escape(_fmt(v)) for v in row])
    return table


def _more_tables(result: dict) -> list:
    """Every other figure `--json` gives, as tables: the text and the JSON say the same things."""
    tr = result["transitions"]
    tables = [_table("Transitions per inference", ["site", "activation", "kind", "units", "active", "flips", "entropy bits"],
                     [[s["name"], s["activation"], s["kind"], s["units"], s["active_per_inference"],
                       s["flips_per_inference"], s["entropy_bits_per_inference"]] for s in tr["sites"]]
                     + [["all gated units", "", "", tr["gated_units"], tr["reset_per_inference"],
                         tr["flips_per_inference"], tr["entropy_bits_per_inference"]]])]
    e_min = result["e_min"]
    tables.append(_table("Parameter entropy per storage code", ["storage", "distinct codes", "H (bit/param)", "E_min J",
                                                                "degenerate"],
                         [[k, v["entropy"].get("distinct_codes"), v["h_bits_per_param"]["value"], v["e_min_j"]["value"],
                           "yes" if v["degenerate"] else "no"] for k, v in e_min["by_storage"].items()]))
    tables.append(_table("Binning sensitivity of H (bf16 histogram)", ["bin width", "plug-in bit/param",
                                                                       "Miller–Madow bit/param"],
                         [[b["bin_width"], b["plugin_bits_per_param"], b["miller_madow_bits_per_param"]]
                          for b in e_min.get("binning_sensitivity", [])]))
    th = result["theorems"]
    tables.append(_table(f"Theorems 2 and 3 (E_min over {th.get('e_min_storage')} codes = {_fmt(th['e_min_j'])} J)",
                         ["theorem", "statement", "verdict", "reason"],
                         [[k.replace("_", " "), v["statement"], v["verdict"], v["reason"]]
                          for k, v in th.items() if isinstance(v, dict) and "verdict" in v]))
    ml = result["ml_temperature_local"]
    tables.append(_table(f"Local ML temperature per layer ({ml['unit']}; {ml['note']})", ["layer", "T_l"],
                         [[layer, t] for layer, t in ml["per_layer"].items()]))
    tables.append(_table("Activation efficiency η_φ = E[φ(z)²]/E[z²], z ~ N(0, q)", ["activation", "q", "η_φ"],
                         [[a["activation"], a["q"], a["eta"]] for a in result["activation_efficiency"]]))
    d = result.get("derivation_prediction")
    if d:
        rows = [[k, v] for k, v in d.items() if not isinstance(v, (dict, list))]
        tables.append(_table("Derivation prediction (retrieve vs derive)", ["quantity", "value"], rows))
    return tables


def bounds(
    model: str = typer.Option("tiny", "--model", help="tiny, small (random init, no download) or a local model directory"),
    temperature: str = typer.Option("300", "--temperature", help="heat-sink temperature in kelvin"),
    profile: Optional[str] = typer.Option(None, "--profile", help="hardware profile name or YAML file for the ladder"),
    as_json: bool = typer.Option(False, "--json", help="print exactly one JSON object"),
) -> None:
    """Landauer bounds, E_min, training floors, energy ladder and Lipschitz profile of a model."""
    t = _temperature(temperature)
    hardware = _load_profile(profile)
    from eitp_bench.runner.progress import HEARTBEAT_S, Steps

    with Steps("bounds", 5, heartbeat_s=HEARTBEAT_S) as steps:  # on stderr: --json keeps stdout one JSON object
        steps.step(f"loading model {model}")
        m = _load_model(model)
        from eitp_bench.theory.bounds import compute_bounds

        result = compute_bounds(m, temperature_k=t, profile=hardware, on_step=steps.step)
    result["model"]["spec"] = model
    if as_json:
        print(json.dumps(result, allow_nan=False))
    else:
        _print_tables(result)


def register(app) -> None:
    app.command("bounds")(bounds)
