"""Everything the theory package says about one model, as one JSON-serialisable dict."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from eitp_bench.theory import derivation, floors, ladder, landauer, lipschitz, ml_temperature, param_entropy
from eitp_bench.theory.constants import K_B, LN2, check_temperature, landauer_j_per_bit
from eitp_bench.theory.quantity import Quantity


def _sample_inputs(model, batch: int = 2, seq_len: int = 32, seed: int = 0) -> torch.Tensor:
    seq_len = min(seq_len, model.config.n_positions)
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (batch, seq_len), generator=gen)


STEPS = ("transition counts", "parameter entropy and E_min", "Lipschitz profile",
         "local ML temperatures and derivation")


def compute_bounds(model, *, temperature_k: float = 300.0, inputs=None, profile: Optional[dict] = None,
                   training_tokens: Optional[float] = None, training_steps: Optional[int] = None,
                   joules_per_token: Optional[float] = None, joules_per_step: Optional[float] = None,
                   lipschitz_iters: int = 20, on_step: Optional[Callable[[str], None]] = None) -> dict[str, Any]:
    """Transition counts and Landauer bounds, H(θ)/E_min, training floors, ladder, Lipschitz profile, η_φ.

    `inputs` defaults to random token ids (2 × 32); N = the model's parameters; D and K default to
    20 tokens per parameter (a Chinchilla-style budget) and D / (8 × 1024) steps, and say so.
    `on_step(name)` is told as each of the STEPS begins (the command's progress).
    """
    step = on_step or (lambda name: None)
    t = check_temperature(temperature_k)
    e_l = landauer_j_per_bit(t)
    n_params = sum(p.numel() for p in model.parameters())
    inputs = _sample_inputs(model) if inputs is None else inputs

    step(STEPS[0])
    counts = landauer.count_transitions(model, inputs)
    bounds = landauer.landauer_bound_per_inference(counts, t)
    step(STEPS[1])
    e_min = param_entropy.e_min(model, t)
    # Floors and theorems use the primary (bf16) codes: the fp32 histogram is degenerate (param_entropy).
    primary = e_min["by_storage"][e_min["primary_storage"]]
    h_codes = primary["entropy"]["miller_madow_bits_per_param"]

    assumed = []
    if training_tokens is None:
        training_tokens = 20.0 * n_params
        assumed.append("D = 20 tokens per parameter (assumed, Chinchilla-style)")
    if training_steps is None:
        training_steps = max(1, int(training_tokens // (8 * 1024)))
        assumed.append("K = D / (8 × 1024 tokens per step) (assumed)")
    floor_list = [
        floors.write_once_floor(n_params, h_codes, t, storage=e_min["primary_storage"]),
        floors.state_overwrite_floor(n_params, training_steps, e_min["native_storage"], t),
        floors.tkachenko_training_floor(n_params, training_tokens, t, d_unit="tokens"),
    ]
    theorems = param_entropy.theorem_checks(None, primary["e_min_j"]["value"])
    theorems["e_min_storage"] = e_min["primary_storage"]

    rungs = ladder.ladder_rungs(t, profile=profile, joules_per_token=joules_per_token, joules_per_step=joules_per_step,
                                extra=[{"name": "Landauer bound, one token (reset count)", "joules": bounds[0].value,
                                        "per": "token", "method": "bound", "source": landauer.SOURCE}]
                                if bounds[0].value else None)
    input_ids = inputs if torch.is_tensor(inputs) else None
    # Small models: float64 over 16 tokens; big ones float32 over 8 (a 1e-4 tolerance needs no more).
    big = n_params >= 20_000_000
    lip_dtype, lip_tokens = (torch.float32, 8) if big else (torch.float64, 16)
    step(STEPS[2])
    lip = (lipschitz.block_profile(model, input_ids[:1, :lip_tokens], iters=lipschitz_iters, dtype=lip_dtype)
           if input_ids is not None else [])

    step(STEPS[3])
    out = {
        "temperature": landauer.heat_sink_temperature(t).as_dict(),
        "constants": {
            "k_B_j_per_k": K_B, "ln2": LN2,
            "landauer_j_per_bit": Quantity("landauer_j_per_bit", e_l, "J/bit", "k_B·T·ln2", "Landauer 1961",
                                           False, t).as_dict(),
        },
        "model": {"parameters": n_params, "storage": e_min["native_storage"], "class": type(model).__name__},
        "transitions": counts.as_dict(),
        "landauer_per_inference": [q.as_dict() for q in bounds],
        "e_min": e_min,
        "theorems": theorems,
        "floors": {"quantities": [q.as_dict() for q in floor_list], "assumptions": assumed,
                   "training_tokens": training_tokens, "training_steps": training_steps},
        "ladder": rungs,
        "lipschitz": {"withdrawn": lipschitz.WITHDRAWN, "blocks": lip},
        "activation_efficiency": ml_temperature.activation_efficiencies(),
        "ml_temperature_local": {
            "per_layer": ml_temperature.local_temperatures(model, inputs),
            "definition": "T_l = 2σ_l²·E‖a_{l−1}‖²/d_l (σ_l² weight variance, a_{l−1} layer input, d_l fan-in)",
            "unit": "loss/nat", "source": ml_temperature.SOURCE, "operationalisation": True,
            "note": ml_temperature.NOT_PHYSICAL,
        },
        "derivation_prediction": derivation.derivation_summary(model.config, profile, t) if hasattr(model, "config") else None,
    }
    if joules_per_token is not None:
        out["measured_over_bound"] = [landauer.compare_measured(joules_per_token, b).as_dict() for b in bounds]
    return out
