"""How big is what each compressed arm ships, against the fp32 baseline? (The paper claims 0.24×.)

GPT-2 small with fresh weights from GPT2Config (nothing is downloaded): the fp32 model, the INT8
control (`quantize_int8_dynamic`) and EIT-P's pipeline (`compress_eitp`: IEM pruning → distillation
→ int8), each sized as the packed artefact on disk (`serialized_bytes`, see workloads/compress.py),
with the bytes of the tied embedding and of the block Linears. For comparison, "dense ÷ fp32" sizes
torch.save of the runnable module's state_dict, where pruned zeros are stored as zeros. Sizes follow
from the shapes, the int8 format and the pruned fraction; training moves them only through the few
weights that round to int8 zero. With --verify each packed file is reloaded and must give
bit-identical logits; with --speed each model's CPU generation speed is printed too (sampling, batch 1).

    python benchmarks/compression_size.py
    python benchmarks/compression_size.py --prune 0.3 0.5 --distill-steps 2 --speed
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from eitp_bench.workloads import compress as Z
from eitp_bench.workloads.generate import GenerationSetting, benchmark_generation
from eitp_bench.workloads.models import build_model

MB = 1e6


def state_dict_bytes(model) -> int:
    """torch.save(state_dict) of the runnable module: what sizing was before pruned zeros were packed."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.pt")
        torch.save(model.state_dict(), path)
        return os.path.getsize(path)


def breakdown(model) -> dict[str, float]:
    """Bytes of the packed tensors by part (tensor payload only, no archive overhead)."""
    parts = {"embedding": 0, "block linears": 0, "other": 0}

    def nbytes(entry) -> int:
        if isinstance(entry, torch.Tensor):
            return entry.numel() * entry.element_size()
        if isinstance(entry, dict):
            return sum(nbytes(v) for v in entry.values() if isinstance(v, (torch.Tensor, dict)))
        return 0

    for key, entry in Z.pack(model)["state"].items():
        part = ("embedding" if key.startswith(("transformer.wte", "lm_head"))
                else "block linears" if (".attn.c_" in key or ".mlp.c_" in key) and "bias" not in key else "other")
        parts[part] += nbytes(entry)
    return parts


def tokens_per_s(model, vocab: int, new_tokens: int) -> float:
    prompts = torch.randint(0, vocab - 1, (1, 16), generator=torch.Generator().manual_seed(0))
    res = benchmark_generation(model, prompts, GenerationSetting("sample", 1, new_tokens), warmups=1, runs=3,
                               seed=0, device="cpu")
    return res.tokens / sum(res.latencies)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="small")
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--prune", type=float, nargs="+", default=[0.3],
                   help="EIT-P prune fractions (0.3: the compress task's)")
    p.add_argument("--distill-steps", type=int, default=20, help="distillation steps (20: the compress task's)")
    p.add_argument("--calib", type=int, default=4, help="calibration batches of 4×64 random tokens")
    p.add_argument("--verify", action="store_true", help="reload each packed file and compare logits")
    p.add_argument("--speed", action="store_true", help="also time CPU generation of each model")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = build_model(args.size, vocab_size=args.vocab, n_positions=1024, seed=0).eval()
    gen = torch.Generator().manual_seed(1)
    calib = [torch.randint(0, args.vocab, (4, 64), generator=gen) for _ in range(args.calib)]
    arms = {"fp32 baseline": model}
    t0 = time.perf_counter()
    arms["baseline-int8"] = Z.quantize_int8_dynamic(model)
    print(f"quantize_int8_dynamic: {time.perf_counter() - t0:.1f} s")
    for amount in args.prune:
        t0 = time.perf_counter()
        arms[f"eitp-compressed (prune {amount:g})"] = Z.compress_eitp(
            model, calib_batches=calib, prune_amount=amount, distill_steps=args.distill_steps, seed=0)
        print(f"compress_eitp prune {amount:g}, {args.distill_steps} distillation steps: {time.perf_counter() - t0:.1f} s")

    base = Z.serialized_bytes(model)
    old_base = state_dict_bytes(model)
    print(f"\nGPT-2 {args.size}, vocab {args.vocab}, fresh weights; MB = 10^6 bytes")
    head = f"{'arm':<30} {'packed MB':>10} {'÷ fp32':>7} {'emb MB':>8} {'linears MB':>11} {'other MB':>9} {'dense ÷ fp32':>12}"
    if args.speed:
        head += f" {'tok/s CPU':>10}"
    print(head)
    x = calib[0][:1, :32]
    for name, m in arms.items():
        size = Z.serialized_bytes(m)
        parts = breakdown(m)
        line = (f"{name:<30} {size / MB:>10.1f} {size / base:>7.3f} {parts['embedding'] / MB:>8.1f}"
                f" {parts['block linears'] / MB:>11.1f} {parts['other'] / MB:>9.1f} {state_dict_bytes(m) / old_base:>12.3f}")
        if args.speed:
            line += f" {tokens_per_s(m, args.vocab, args.new_tokens):>10.1f}"
        print(line)
        if args.verify:
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "model.pt")
                Z.save_packed(m, path)
                same = torch.equal(Z.load_packed(path)(x).logits, m(x).logits)
            print(f"{'':<30} reloaded from the packed file alone: logits {'identical' if same else 'DIFFER'}")
            if not same:
                raise SystemExit(1)
    print("\npaper: 0.24× (4.2× compression); dense ÷ fp32 = torch.save(state_dict) of the runnable module,"
          " pruned zeros stored as zeros")


if __name__ == "__main__":
    main()
