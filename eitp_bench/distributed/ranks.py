"""One rank of a multi-rank repetition: process group, device, sensors, data shard, which tasks it runs.

The worker (runner.worker_main) runs in every rank with a `RankContext`; only rank 0 writes records.
What runs where:
- `train`: every rank, under DistributedDataParallel (NCCL on GPUs, gloo on CPU). train.batch_size is
  the global batch; rank r takes rows [r·b, (r+1)·b) of every global batch (b = batch / world size), so
  every world size sees the same global batches and DDP's mean gradient is the global batch's.
- `generate`: every rank on its own prompts (the next max(batch_sizes) validation blocks after the
  previous rank's); batch sizes are per rank; tokens/s is every rank's tokens over the slowest rank's time,
  latency percentiles are over every rank's calls.
- `lm`, `retrieval`, `compress`, `theory`, `derivation`: rank 0 alone (`RANK0_TASKS`), its windows
  measured by rank 0's sensors only (its GPU, its machine's CPU/DRAM); the other ranks wait at a gloo
  barrier, which does not spin a GPU. If such a task needs the trained model first, every rank trains it.
Barriers and energy gathers go over a separate gloo group, whose timeout is the suite's timeout_s.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from typing import Any, Callable, Optional

EVERY_RANK_TASKS = ("train", "generate")
RANK0_TASKS = ("lm", "retrieval", "compress", "theory", "derivation")
NEEDS_TRAINED_LM = ("lm", "compress", "theory", "derivation")


def shard_rows(batch, rank: int, world_size: int):
    """Rank `rank`'s rows of one global batch (its first axis split into equal parts)."""
    per = len(batch) // world_size
    if per * world_size != len(batch):
        raise ValueError(f"a global batch of {len(batch)} does not split over {world_size} ranks")
    return batch[rank * per:(rank + 1) * per]


def pool_generation(per_rank: list[tuple[list[float], int]]) -> tuple[list[float], int, float]:
    """Ranks' (latencies, tokens) → every call's latency, all tokens, and the slowest rank's busy time.
    Ranks generate side by side (each may make a different number of calls to fill its window), so
    aggregate tokens/s = all tokens ÷ the longest any rank took; never a mean of per-rank rates."""
    latencies = [lat for lats, _ in per_rank for lat in lats]
    return latencies, sum(tokens for _, tokens in per_rank), max(sum(lats) for lats, _ in per_rank)


@dataclass
class RankContext:
    rank: int
    local_rank: int
    world_size: int
    nnodes: int
    node_rank: int
    host: str
    device: str
    backend: str
    _control: Any = None  # the gloo group for barriers and gathers

    # -- start and stop --------------------------------------------------------------------
    @classmethod
    def start(cls, suite) -> "RankContext":
        """Join the process group torchrun's environment describes; pick this rank's device."""
        from datetime import timedelta

        import torch
        import torch.distributed as dist

        env = os.environ
        rank, local_rank, world = int(env["RANK"]), int(env["LOCAL_RANK"]), int(env["WORLD_SIZE"])
        local_world = int(env.get("LOCAL_WORLD_SIZE", world))
        wants_cuda = suite.device == "cuda" or (suite.device == "auto" and torch.cuda.is_available())
        if wants_cuda:
            if not torch.cuda.is_available():
                raise RuntimeError("suite asks for device cuda but torch sees no CUDA GPU")
            if local_world > torch.cuda.device_count():  # preflight refuses this; a machine it could not count
                raise RuntimeError(f"{local_world} NCCL ranks on this machine but torch sees "
                                   f"{torch.cuda.device_count()} GPU(s): NCCL needs one GPU per rank")
            index = local_rank
            torch.cuda.set_device(index)
            device, backend = f"cuda:{index}", "nccl"
        else:
            device, backend = "cpu", "gloo"
        timeout = timedelta(seconds=suite.timeout_s)
        dist.init_process_group(backend=backend, timeout=timeout)
        control = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
        return cls(rank, local_rank, world, max(1, world // local_world), int(env.get("GROUP_RANK", 0)),
                   socket.gethostname(), device, backend, control)

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            self.barrier()
            dist.destroy_process_group()

    # -- collectives over the gloo control group -------------------------------------------
    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier(group=self._control)

    def all_gather(self, obj: Any) -> list:
        import torch.distributed as dist

        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self._control)
        return out

    def from_rank0(self, obj: Any) -> Any:
        """Rank 0's obj on every rank (a choice that must be the same everywhere, e.g. a tuned lr)."""
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self._control)
        return box[0]

    def sibling_pids(self) -> set[int]:
        """Every rank's pid and its parent's (the launcher agent): not "other" processes for isolation."""
        return {p for pair in self.all_gather((os.getpid(), os.getppid())) for p in pair}

    # -- sensors ---------------------------------------------------------------------------
    def _gpu_identity(self) -> Optional[tuple]:
        """The physical GPU this rank runs on ((host, uuid)); on CPU the NVML GPU of its local rank."""
        if self.device.startswith("cuda"):
            from eitp_bench.energy.nvml import torch_device_uuids

            uuids = torch_device_uuids() or []
            index = int(self.device.split(":")[1])
            return (self.host, uuids[index] if index < len(uuids) else f"cuda:{index}")
        return (self.host, f"nvml:{self.local_rank}")

    def make_monitor(self, *, interval: float, timeline: bool, tdp_w: Optional[float]):
        """This rank's RankMonitor: its GPU if it is the lowest rank on it, RAPL if it is local rank 0."""
        from eitp_bench.distributed.energy_gather import RankMonitor, gpu_owners, node_meter_owners
        from eitp_bench.energy.monitor import discover_meters

        facts = self.all_gather((self.host, self.local_rank, self._gpu_identity()))
        owns_gpu = gpu_owners([f[2] for f in facts])[self.rank]
        owns_node = node_meter_owners([f[0] for f in facts], [f[1] for f in facts])[self.rank]
        ordinal = int(self.device.split(":")[1]) if self.device.startswith("cuda") else self.local_rank
        meters, statuses = discover_meters(interval=interval, tdp_w=tdp_w,
                                           gpus=[ordinal] if owns_gpu else [], node_meters=owns_node)
        monitor = RankMonitor(meters, rank=self.rank, host=self.host, barrier=self.barrier,
                              all_gather=self.all_gather, interval=interval, timeline=timeline)
        monitor.statuses = statuses
        return monitor

    # -- training --------------------------------------------------------------------------
    def shard(self, batches):
        """This rank's rows of every global batch, in order."""
        for batch in batches:
            yield shard_rows(batch, self.rank, self.world_size)

    def wrap_for_training(self, model):
        """The model under DistributedDataParallel; attributes the objectives read pass through to it."""
        from torch.nn.parallel import DistributedDataParallel

        class _DDP(DistributedDataParallel):
            def __getattr__(self, name: str):
                try:
                    return super().__getattr__(name)
                except AttributeError:
                    return getattr(self.module, name)

        device_ids = [int(self.device.split(":")[1])] if self.device.startswith("cuda") else None
        # GPT-2's buffers are constant masks: no per-forward broadcast needed
        return _DDP(model.to(self.device), device_ids=device_ids, broadcast_buffers=False)

    def parameters_identical(self, model) -> bool:
        """True when every rank holds bit-identical parameters (what DDP promises after each step)."""
        import torch

        digest = hashlib.sha256()
        for name, p in sorted(model.state_dict().items()):
            digest.update(name.encode())  # the raw bytes, whatever the dtype (numpy has no bf16)
            digest.update(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return len(set(self.all_gather(digest.hexdigest()))) == 1

    # -- tasks -----------------------------------------------------------------------------
    def run_task(self, task: str, ctx, fn: Callable) -> list:
        """Run one task as the module docstring says; rank 0 returns its metrics, the others []."""
        if task not in RANK0_TASKS:
            return fn(ctx)
        if task in NEEDS_TRAINED_LM:
            ctx.trained_lm()  # collective: every rank trains (once per repetition) before rank 0 goes on
        out: list = []
        if self.rank == 0:
            with ctx.monitor.local():
                out = fn(ctx)
        self.barrier()  # the other ranks wait here, on the gloo group
        return out

    def combine_generation(self, result):
        """One GenerationResult for all ranks (pool_generation); its window already holds every rank's energy."""
        from dataclasses import replace

        latencies, tokens, busy_s = pool_generation(self.all_gather((result.latencies, result.tokens)))
        return replace(result, latencies=latencies, tokens=tokens, busy_s=busy_s)

    def prompt_offset(self, n_prompts: int) -> int:
        """Where this rank's prompts start among the validation blocks."""
        return self.rank * n_prompts
