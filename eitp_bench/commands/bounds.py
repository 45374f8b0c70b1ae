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
    from eitp_bench.hardware.profiles import load_profiles

    profiles = load_profiles()
    for p in profiles:
        if p.name.lower() == name.lower():
            return p.model_dump()
    raise UserError(f"no hardware profile named {name!r}",
                    fix="use one of: " + "; ".join(p.name for p in profiles) + " (or a YAML file path)")


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


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
    e_min = result["e_min"]
    degenerate = [s for s, v in e_min["by_storage"].items() if v["degenerate"]]
    notes = [f"E_min headline over {e_min['primary_storage']} storage codes (floors and theorems use it)"]
    if degenerate:
        notes.append(f"{', '.join(degenerate)}: degenerate — {e_min['degenerate_note']}")
    for note in (result["transitions"]["notes"] + [e_min["binning_note"]] + notes
                 + result["floors"]["assumptions"]):
        console.print(f"• {note}", highlight=False, markup=False)


def bounds(
    model: str = typer.Option("tiny", "--model", help="tiny, small (random init, no download) or a local model directory"),
    temperature: str = typer.Option("300", "--temperature", help="heat-sink temperature in kelvin"),
    profile: Optional[str] = typer.Option(None, "--profile", help="hardware profile name or YAML file for the ladder"),
    as_json: bool = typer.Option(False, "--json", help="print exactly one JSON object"),
) -> None:
    """Landauer bounds, E_min, training floors, energy ladder and Lipschitz profile of a model."""
    t = _temperature(temperature)
    hardware = _load_profile(profile)
    from eitp_bench.progress import Steps

    with Steps("bounds", 5) as steps:  # on stderr: --json keeps stdout one JSON object
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
