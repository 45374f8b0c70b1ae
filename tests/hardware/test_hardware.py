"""Hardware detection on fake /proc files and a fake NVML; profiles; the stable profile id."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from eitp_bench.hardware import describe, detect
from eitp_bench.hardware.detect import CpuInfo, GpuInfo, Machine, _torch_versions
from eitp_bench.hardware.profiles import (
    HardwareProfile,
    load_profiles,
    match_machine,
    match_profile,
    profile_alias,
    profile_id,
)


def fake_cpuinfo(model: str, sockets: int, cores: int, threads_per_core: int) -> str:
    """/proc/cpuinfo as x86 Linux writes it: one block per logical CPU."""
    blocks, n = [], 0
    for socket in range(sockets):
        for t in range(threads_per_core):
            for core in range(cores):
                blocks.append(
                    f"processor\t: {n}\nvendor_id\t: GenuineIntel\nmodel name\t: {model}\n"
                    f"physical id\t: {socket}\nsiblings\t: {cores * threads_per_core}\n"
                    f"core id\t\t: {core * 2}\ncpu cores\t: {cores}\nflags\t\t: fpu avx512f\n"
                )
                n += 1
    return "\n".join(blocks) + "\n"


class FakeNvml:
    """The pynvml functions detect() calls, over a list of fake GPUs."""

    def __init__(self, gpus, *, init_error=None):
        self.gpus, self.init_error, self.shutdown_called = gpus, init_error, False

    def nvmlInit(self):
        if self.init_error:
            raise RuntimeError(self.init_error)

    def nvmlShutdown(self):
        self.shutdown_called = True

    def nvmlSystemGetDriverVersion(self):
        return "550.54.15"

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.gpus[i]

    def nvmlDeviceGetName(self, h):
        return h["name"].encode()  # older pynvml returns bytes

    def nvmlDeviceGetUUID(self, h):
        return h["uuid"]

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=h["memory"], free=0, used=0)

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        if h.get("limit_mw") is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return h["limit_mw"]

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not h.get("energy", True):
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return 123456


def h100(i, **extra):
    return {"name": "NVIDIA H100 80GB HBM3", "uuid": f"GPU-{i}", "memory": 85520809984, "limit_mw": 700000, **extra}


@pytest.fixture
def proc(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(fake_cpuinfo("Intel(R) Xeon(R) Platinum 8480+", sockets=2, cores=4, threads_per_core=2))
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       2113389212 kB\nMemFree:        1000 kB\n")
    return {"cpuinfo_path": cpuinfo, "meminfo_path": meminfo}


def test_detect_cpu_memory_and_gpus_from_fakes(proc):
    nvml = FakeNvml([h100(0), h100(1, energy=False, limit_mw=None)])
    m = detect(nvml=nvml, **proc)
    assert m.cpu == CpuInfo(model="Intel(R) Xeon(R) Platinum 8480+", vendor="GenuineIntel", sockets=2, cores=8, threads=16)
    assert m.memory_bytes == 2113389212 * 1024
    assert [g.name for g in m.gpus] == ["NVIDIA H100 80GB HBM3"] * 2
    assert m.gpus[0] == GpuInfo(index=0, name="NVIDIA H100 80GB HBM3", uuid="GPU-0", memory_bytes=85520809984,
                                power_limit_w=700.0, energy_counter=True)  # fmt: skip
    assert m.gpus[1].energy_counter is False and m.gpus[1].power_limit_w is None
    assert any("GPU 1 power limit" in n for n in m.notes)
    assert m.driver == "550.54.15" and nvml.shutdown_called


def test_detect_never_fails(tmp_path):
    m = detect(nvml=FakeNvml([], init_error="NVML Shared Library Not Found"),
               cpuinfo_path=tmp_path / "none", meminfo_path=tmp_path / "none")  # fmt: skip
    assert m.gpus == [] and m.memory_bytes is None and m.cpu.threads >= 1
    assert any("NVML unavailable" in n for n in m.notes)
    assert detect(nvml=None).gpus == []


def test_torch_version_read_without_importing_torch():
    from importlib.metadata import version

    torch_version, cuda = _torch_versions()
    assert torch_version == version("torch")
    if cuda is not None:
        assert cuda[0].isdigit()


# --- profiles --------------------------------------------------------------------------------


def test_every_bundled_profile_validates_and_cites_sources():
    profiles = load_profiles()
    names = {p.name for p in profiles}
    assert len(names) == len(profiles) >= 13
    for p in profiles:
        assert p.sources and all(s.strip() for s in p.sources)
        if p.kind == "gpu":
            assert p.tdp_w and p.peak_flops.fp32 and p.memory_bandwidth_bytes_per_s and p.nvml_energy_counter
    assert [p.name for p in profiles if p.generic] == ["Generic CPU"]
    h100 = match_profile("NVIDIA H100 80GB HBM3", "gpu")
    assert h100.peak_flops.bf16 == 989.4e12 and h100.tdp_w == 700  # docs/physical-floors.md §5


@pytest.mark.parametrize(
    "name, expected",
    [
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5 80GB"),
        ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe 80GB"),
        ("NVIDIA H100 NVL", None),
        ("NVIDIA H200", "NVIDIA H200 SXM 141GB"),
        ("NVIDIA H200 NVL", None),
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 SXM4 80GB"),
        ("NVIDIA A100-SXM4-40GB", "NVIDIA A100 SXM4 40GB"),
        ("Tesla V100-SXM2-16GB", "NVIDIA Tesla V100 SXM2"),
        ("NVIDIA L4", "NVIDIA L4"),
        ("NVIDIA L40S", None),
        ("Tesla T4", "NVIDIA Tesla T4"),
        ("NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 3090"),
        ("NVIDIA GeForce RTX 3090 Ti", None),
        ("NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090"),
    ],
)
def test_gpu_names_match_exactly_one_profile(name, expected):
    hits = [p.name for p in load_profiles() if p.kind == "gpu" and p.matches(name)]
    assert hits == ([expected] if expected else [])
    got = match_profile(name, "gpu")
    assert (got.name if got else None) == expected


@pytest.mark.parametrize(
    "model, expected",
    [
        ("Intel(R) Xeon(R) Platinum 8480+", "Intel Xeon Platinum 8480+ (Sapphire Rapids)"),
        ("AMD EPYC 9654 96-Core Processor", "AMD EPYC 9654 (Genoa)"),
        ("AMD EPYC 9654P 96-Core Processor", "AMD EPYC 9654 (Genoa)"),
        ("AMD EPYC 7763 64-Core Processor", "Generic CPU"),
        ("Intel(R) Xeon(R) Platinum 8470", "Generic CPU"),
        ("Apple M2", "Generic CPU"),
    ],
)
def test_cpu_models_match_or_fall_back(model, expected):
    assert match_profile(model, "cpu").name == expected


def test_derived_energy_figure_must_add_up():
    base = dict(name="x", kind="gpu", match=["x"], tdp_w=400, peak_flops={"bf16": 312e12}, sources=["s"])
    ok = HardwareProfile(**base, energy_per_flop={"joules": 1.282e-12, "basis": "derived: tdp_w / peak_flops.bf16"})
    assert ok.energy_per_flop.joules == 1.282e-12
    with pytest.raises(ValidationError, match="gives 1.28e-12"):
        HardwareProfile(**base, energy_per_flop={"joules": 1.0e-12, "basis": "derived: tdp_w / peak_flops.bf16"})
    with pytest.raises(ValidationError):
        HardwareProfile(**{**base, "match": ["(unclosed"]})
    with pytest.raises(ValidationError):
        HardwareProfile(**{**base, "sources": []})


# --- the stable profile id -------------------------------------------------------------------


def test_profile_id_ignores_volatile_fields_and_tracks_the_hardware(proc):
    m = detect(nvml=FakeNvml([h100(0), h100(1)]), **proc)
    pid = profile_id(m)
    assert len(pid) == 12
    volatile = dataclasses.replace(
        m,
        hostname="another-node-17",
        kernel="6.1.0",
        driver="560.00",
        torch="2.9.0",
        memory_bytes=m.memory_bytes - 300 * 2**20,  # a different kernel reserves a little more
        gpus=[dataclasses.replace(g, uuid="GPU-other", power_limit_w=500.0) for g in m.gpus],
    )
    assert profile_id(volatile) == pid
    other_gpu = dataclasses.replace(m, gpus=[dataclasses.replace(g, name="NVIDIA H100 PCIe") for g in m.gpus])
    assert profile_id(other_gpu) != pid
    one_gpu = dataclasses.replace(m, gpus=m.gpus[:1])
    assert profile_id(one_gpu) != pid
    assert profile_id(dataclasses.replace(m, cpu=dataclasses.replace(m.cpu, sockets=1, cores=4))) != pid


def test_profile_id_is_the_same_in_another_process():
    # No dict-order or hash-seed dependence: a fixed machine gives a fixed id.
    m = Machine(gpus=[GpuInfo(0, "NVIDIA L4"), GpuInfo(1, "Tesla T4")], cpu=CpuInfo(model="AMD EPYC 9654", sockets=1, cores=96),
                memory_bytes=512 * 2**30)  # fmt: skip
    swapped = dataclasses.replace(m, gpus=list(reversed(m.gpus)))
    assert profile_id(m) == profile_id(swapped)
    import subprocess
    import sys

    code = (
        "from eitp_bench.hardware.detect import *; from eitp_bench.hardware.profiles import profile_id;"
        "print(profile_id(Machine(gpus=[GpuInfo(0,'NVIDIA L4'),GpuInfo(1,'Tesla T4')],"
        "cpu=CpuInfo(model='AMD EPYC 9654',sockets=1,cores=96),memory_bytes=512*2**30)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()  # fmt: skip
    assert out == profile_id(m)


def test_matching_and_describe(proc):
    m = detect(nvml=FakeNvml([h100(0), {**h100(1), "name": "NVIDIA L40S"}]), **proc)
    matched = match_machine(m)
    assert [p.name if p else None for p in matched["gpus"]] == ["NVIDIA H100 SXM5 80GB", None]
    assert matched["cpu"].name == "Intel Xeon Platinum 8480+ (Sapphire Rapids)"
    info = describe(m)
    assert info["profile_id"] == profile_id(m)
    assert info["machine"]["hostname"] == m.hostname  # provenance keeps it; the id does not use it
    assert profile_alias(m) == "1x NVIDIA H100 80GB HBM3 + 1x NVIDIA L40S + 2x Intel(R) Xeon(R) Platinum 8480+"
