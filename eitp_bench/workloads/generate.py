"""Autoregressive generation, timed and metered: exactly N new tokens per sequence, KV cache on.

`min_new_tokens == max_new_tokens` so EOS can never cut a run short: every arm generates the
same number of tokens. Warm-up runs are discarded. One monitor window spans the timed runs of a
setting, and joules per token = that window's joules / tokens generated in it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from eitp_bench import names
from eitp_bench.records import EnergyEntry, Metric
from eitp_bench.workloads.train import cuda_sync


@dataclass
class GenerationSetting:
    mode: str  # "sample" (EIT-P's serving settings) or "greedy"
    batch_size: int
    new_tokens: int = 100
    temperature: float = 0.7
    top_p: float = 0.9

    @property
    def label(self) -> str:
        return names.generate_tag(self.mode, self.batch_size)


def generate_kwargs(model, setting: GenerationSetting) -> dict:
    pad = model.config.pad_token_id
    if pad is None:
        pad = model.config.eos_token_id if model.config.eos_token_id is not None else 0
    kwargs = dict(
        max_new_tokens=setting.new_tokens,
        min_new_tokens=setting.new_tokens,
        use_cache=True,
        pad_token_id=pad,
        do_sample=setting.mode == "sample",
    )
    if setting.mode == "sample":
        kwargs.update(temperature=setting.temperature, top_p=setting.top_p, top_k=0)
    else:
        # Neutralise sampling defaults a checkpoint's generation_config may carry.
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


@torch.no_grad()
def generate_once(model, prompts: torch.Tensor, setting: GenerationSetting) -> torch.Tensor:
    """The new tokens only, (batch, new_tokens)."""
    mask = torch.ones_like(prompts)
    out = model.generate(input_ids=prompts, attention_mask=mask, **generate_kwargs(model, setting))
    return out[:, prompts.shape[1] :]


@dataclass
class GenerationResult:
    setting: GenerationSetting
    latencies: list[float]  # seconds per generate() call, timed runs only
    tokens: int  # new tokens generated in the timed runs
    window: Optional[object] = None  # the monitor WindowResult around the timed runs
    # Seconds the timed runs took, if not the sum of `latencies`: ranks generate side by side, so a
    # multi-rank result pools every rank's calls and takes the slowest rank's time (distributed/ranks.py).
    busy_s: Optional[float] = None

    @property
    def window_name(self) -> str:
        return names.generate_window(self.setting.mode, self.setting.batch_size)

    def metrics(self, headline: bool = False) -> list[Metric]:
        lat = np.asarray(self.latencies)
        total = self.busy_s if self.busy_s is not None else float(lat.sum())
        tag = self.setting.label
        w = self.window_name
        out = [
            Metric(name=names.at("latency_p50_s", tag), value=float(np.percentile(lat, 50)), unit="s", window=w),
            Metric(name=names.at("latency_p90_s", tag), value=float(np.percentile(lat, 90)), unit="s", window=w),
            Metric(name=names.at("latency_p99_s", tag), value=float(np.percentile(lat, 99)), unit="s", window=w),
            Metric(name=names.at("tokens_per_s", tag), value=self.tokens / total, unit="tokens/s", window=w),
        ]
        if self.window is not None:
            for metric, attr in (("joules_per_token", "measured_joules"), (names.estimated("joules_per_token"), "estimated_joules")):
                joules = getattr(self.window, attr)
                if joules is not None:
                    out.append(Metric(name=names.at(metric, tag), value=joules / self.tokens,
                                      unit="J/token", window=w))
        if headline:  # EIT-P's own setting (sampling, batch 1) under the plain names the claims read
            out += [Metric(name=names.split_at(m.name)[0], value=m.value, unit=m.unit, window=m.window) for m in out]
        return out

    def energy_entries(self) -> list[EnergyEntry]:
        return self.window.entries(self.window_name) if self.window is not None else []


def benchmark_generation(
    model,
    prompts: torch.Tensor,
    setting: GenerationSetting,
    *,
    warmups: int,
    runs: int,
    seed: int,
    device,
    monitor=None,
    min_window_s: float = 0.0,
    precision: str = "fp32",
    seen: Optional[dict] = None,
) -> GenerationResult:
    """Time `runs` generate() calls of `prompts[:batch_size]` after `warmups` discarded ones; with a
    monitor, keep calling until the energy window lasts `min_window_s` (steady state, energy/steady.py).
    Every call runs under the suite's precision (workloads/precision.py); logits dtypes go to seen["generate"]."""
    from eitp_bench.workloads.precision import autocast, observe

    model.to(device).eval()
    batch = prompts[: setting.batch_size].to(device)
    if batch.shape[0] != setting.batch_size:
        raise ValueError(f"need {setting.batch_size} prompts, have {prompts.shape[0]}")
    torch.manual_seed(seed)  # sampling runs draw the same random numbers in every arm
    for _ in range(warmups):
        with autocast(device, precision):
            generate_once(model, batch, setting)
    latencies: list[float] = []
    win = monitor.begin(names.generate_window(setting.mode, setting.batch_size)) if monitor is not None else None
    t_start = time.perf_counter()
    while len(latencies) < runs or (win is not None and time.perf_counter() - t_start < min_window_s):
        cuda_sync(device)
        t0 = time.perf_counter()
        with autocast(device, precision), observe(model, seen, "generate"):
            new = generate_once(model, batch, setting)
        cuda_sync(device)
        latencies.append(time.perf_counter() - t0)
        if new.shape[1] != setting.new_tokens:  # never report a shortened run
            raise RuntimeError(f"generate() returned {new.shape[1]} new tokens, expected {setting.new_tokens}")
    window = win.end() if win is not None else None
    return GenerationResult(setting, latencies, len(latencies) * setting.batch_size * setting.new_tokens, window)
