"""Reduced precision where the hardware has it: ``[train] mixed_precision`` resolved to a Keras
dtype policy (float16 on GPUs with tensor cores, bfloat16 on CPUs with AMX or AVX512-BF16).

The policy is given to every layer but the last: the softmax head, and so the losses and
metrics, stay float32. ``auto`` asks the machine; the choice is logged and recorded in the
model folder's provenance.json.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

POLICIES = {False: "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


@dataclass(frozen=True)
class Precision:
    """A resolved ``[train] mixed_precision``: the Keras policy and why it was chosen."""

    policy: str  # "float32", "mixed_float16" or "mixed_bfloat16"
    reason: str

    def as_record(self) -> dict[str, str]:
        return {"policy": self.policy, "reason": self.reason}


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``); empty where unknown."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bfloat16_flags() -> set[str]:
    """The flags of this CPU that give fast bfloat16 (AMX, AVX512-BF16); empty without them."""
    return cpu_flags() & {"amx_bf16", "avx512_bf16"}


def gpu_with_tensor_cores() -> str | None:
    """The name of a visible GPU of compute capability 7.0 or more (tensor cores), or None."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        if tuple(details.get("compute_capability", (0, 0))) >= (7, 0):
            return details.get("device_name", gpu.name)
    return None


def resolve_precision(setting: bool | str) -> Precision:
    """The policy for ``[train] mixed_precision`` on this machine.

    ``auto``: float16 on a GPU with tensor cores; bfloat16 on a CPU with AMX or AVX512-BF16
    (and no such GPU); float32 elsewhere.
    """
    if setting in POLICIES:
        return Precision(POLICIES[setting], "set in [train] mixed_precision")
    gpu = gpu_with_tensor_cores()
    if gpu:
        return Precision("mixed_float16", f"auto: GPU {gpu} has tensor cores")
    flags = cpu_bfloat16_flags()
    if flags:
        return Precision("mixed_bfloat16", f"auto: the CPU has {', '.join(sorted(flags))}")
    return Precision("float32", "auto: no GPU with tensor cores, no CPU with bfloat16 instructions")


def visible_gpu_memory() -> int | None:
    """Bytes of memory of the first NVIDIA GPU TensorFlow sees (``nvidia-smi``; the first of
    ``CUDA_VISIBLE_DEVICES`` when that is set), or None without one."""
    import os
    import shutil
    import subprocess

    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU") or shutil.which("nvidia-smi") is None:
        return None
    try:
        first = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
        which = ["--id", first] if first else []
        out = subprocess.run(
            ["nvidia-smi", *which, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return int(out.split()[0]) * 2**20
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
