"""The pynvml binding in our words: loading it (`load_pynvml`, one clear error and its fix), its
errors described, its odd return types (bytes, mJ, field values) turned into plain values.
"""

from __future__ import annotations

import warnings
from typing import Any

from eitp_bench.errors import UserError


FIX_PYNVML = "pip install nvidia-ml-py (it provides the `pynvml` module; the PyPI `pynvml` distribution is deprecated)"
FIX_LIBRARY = (
    "install the NVIDIA driver, or run the container with --gpus all and the NVIDIA container toolkit"
)
FIX_PERMISSION = ("nothing to do if the scheduler gave this job other GPUs (Slurm/cgroups); to measure this one, "
                  "request it in the job or set CUDA_VISIBLE_DEVICES to the GPUs the job owns")


def load_pynvml() -> Any:
    """Import `pynvml` lazily; a UserError with the fix if it is missing."""
    try:
        with warnings.catch_warnings():  # the deprecated `pynvml` distribution warns on import
            warnings.simplefilter("ignore", FutureWarning)
            import pynvml
    except ImportError as err:
        raise UserError(f"the pynvml module is not importable ({err})", fix=FIX_PYNVML) from err
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _uuid_key(uuid: str) -> str:
    """Compare UUIDs without the GPU-/MIG- prefix: torch prints them bare."""
    u = _text(uuid).strip().lower()
    for prefix in ("gpu-", "mig-"):
        if u.startswith(prefix):
            return u[len(prefix) :]
    return u


def _nvml_error(N: Any) -> Any:
    """pynvml's base error class, or a class nothing raises (a binding without one)."""
    cls = getattr(N, "NVMLError", None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else ()


def _describe(N: Any, err: BaseException) -> str:
    """An exception from the binding, for a flag or a doctor line: NVML's own words, or what went wrong."""
    if isinstance(err, _nvml_error(N)):
        return f"{type(err).__name__}: {err}"
    return f"unexpected {type(err).__name__} from the NVML binding: {err}"


def _as_mj(value: Any) -> int:
    """The energy counter's value as integer mJ; TypeError for anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        raise TypeError(f"nvmlDeviceGetTotalEnergyConsumption returned {value!r}, not a count of mJ")
    return int(value)


def _field_number(fv: Any) -> float:
    """The value of an nvmlFieldValue_t, whatever its declared type."""
    attr = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}
    return float(getattr(fv.value, attr.get(int(fv.valueType), "uiVal")))
