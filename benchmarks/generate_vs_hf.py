"""Is our baseline's generation as fast as stock transformers? (A fair baseline is within 5 %.)

Same GPT2LMHeadModel, same weights, KV cache on, same prompts and token count. Rounds alternate
eitp-bench's `benchmark_generation` and a bare `model.generate` loop, so drift hits both alike.

    python benchmarks/generate_vs_hf.py --size tiny --rounds 7
    python benchmarks/generate_vs_hf.py --size small --device cuda --new-tokens 100
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from eitp_bench.workloads.generate import GenerationSetting, benchmark_generation
from eitp_bench.workloads.models import build_model


def stock_generate_tokens_per_s(model, prompts, setting, runs, device):
    """The plain Hugging Face call a user would write, timed the same way."""
    mask = torch.ones_like(prompts)
    sample = setting.mode == "sample"
    extra = dict(temperature=setting.temperature, top_p=setting.top_p, top_k=0) if sample else {}
    times = []
    for _ in range(runs):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model.generate(input_ids=prompts, attention_mask=mask, max_new_tokens=setting.new_tokens,
                             min_new_tokens=setting.new_tokens, do_sample=sample, use_cache=True,
                             pad_token_id=model.config.eos_token_id, **extra)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        assert out.shape[1] - prompts.shape[1] == setting.new_tokens
    return runs * prompts.shape[0] * setting.new_tokens / sum(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="tiny")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--new-tokens", type=int, default=100)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--mode", choices=["sample", "greedy"], default="sample")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--runs", type=int, default=3, help="generate() calls per side per round")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared CPU)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    model = build_model(args.size, vocab_size=args.vocab, n_positions=1024, seed=0).to(args.device).eval()
    prompts = torch.randint(0, args.vocab - 1, (args.batch, 16), generator=torch.Generator().manual_seed(0)).to(args.device)
    setting = GenerationSetting(args.mode, args.batch, args.new_tokens)
    # Warm both paths up once (allocator, kernels, caches), then alternate.
    benchmark_generation(model, prompts, setting, warmups=2, runs=1, seed=0, device=args.device)
    stock_generate_tokens_per_s(model, prompts, setting, 1, args.device)
    ours, stock = [], []
    for r in range(args.rounds):
        order = ("ours", "stock") if r % 2 == 0 else ("stock", "ours")  # ABBA: no side always goes first
        for side in order:
            if side == "ours":
                res = benchmark_generation(model, prompts, setting, warmups=0, runs=args.runs, seed=r, device=args.device)
                ours.append(res.tokens / sum(res.latencies))
            else:
                stock.append(stock_generate_tokens_per_s(model, prompts, setting, args.runs, args.device))
    mo, ms = statistics.median(ours), statistics.median(stock)
    print(f"device={args.device} size={args.size} mode={args.mode} batch={args.batch} new_tokens={args.new_tokens} "
          f"rounds={args.rounds}x{args.runs} threads={torch.get_num_threads()}")
    print(f"eitp-bench baseline : {mo:10.1f} tokens/s (median of rounds; min {min(ours):.1f}, max {max(ours):.1f})")
    print(f"stock HF generate   : {ms:10.1f} tokens/s (median of rounds; min {min(stock):.1f}, max {max(stock):.1f})")
    ratio = mo / ms
    print(f"ratio ours/stock    : {ratio:.3f}  ({'within' if abs(ratio - 1) <= 0.05 else 'OUTSIDE'} 5 %)")


if __name__ == "__main__":
    main()
