"""TensorFlow's C++ start-up lines never reach a user: the CLI and the notebooks import it
through hippo_utils.core.backend.import_tensorflow."""

from __future__ import annotations

import subprocess
import sys

from hippo_utils.core.backend import without_chatter

STARTUP = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1795609141.291294    7779 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    "GPU will not be used.\n"
    "E0000 00:00:1795611615.662685   15700 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
)


def test_start_up_notices_are_dropped_and_other_lines_kept():
    assert without_chatter(STARTUP) == ""
    assert without_chatter(STARTUP + "ImportError: libfoo.so: cannot open\n") == "ImportError: libfoo.so: cannot open\n"


def test_importing_tensorflow_prints_nothing_then_works():
    code = (
        "from hippo_utils.core.backend import import_tensorflow\n"
        "tf = import_tensorflow()\n"
        "assert import_tensorflow() is tf\n"
        "print(float(tf.reduce_sum(tf.ones((2, 3)))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "6.0" and done.stderr == "", done.stderr


def test_the_cuda_notices_pass_when_a_gpu_was_expected():
    kept = without_chatter(STARTUP, keep_cuda=True)
    assert "absl::InitializeLog" not in kept
    assert "Could not find cuda drivers" in kept and "failed call to cuInit: INTERNAL" in kept


def test_a_machine_with_a_gpu_that_tensorflow_cannot_see_is_told_so(monkeypatch, tmp_path):
    """On a machine whose nvidia-smi (or Colab's GPU runtime) says there is a GPU, a TensorFlow
    that sees none leaves the CUDA notices in, and the device line warns."""
    import os
    import types

    from hippo_utils.core import backend

    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("COLAB_GPU", raising=False)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(os.path, "exists", lambda p, real=os.path.exists: False if p == "/dev/nvidiactl" else real(p))
    assert backend.gpu_expected() == "nvidia-smi"
    cpu_only = types.SimpleNamespace(config=types.SimpleNamespace(list_physical_devices=lambda kind: []))
    line = backend.describe_device(cpu_only)
    assert line.startswith("device: CPU (") and "WARNING: nvidia-smi says this machine has an NVIDIA GPU" in line
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # hidden on purpose: no warning
    assert backend.gpu_expected() is None and backend.describe_device(cpu_only).endswith("cores; no GPU)")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("COLAB_GPU", "1")
    assert backend.gpu_expected() == "Colab's GPU runtime"
    gpu = types.SimpleNamespace(name="/physical_device:GPU:0")
    with_gpu = types.SimpleNamespace(
        config=types.SimpleNamespace(
            list_physical_devices=lambda kind: [gpu],
            experimental=types.SimpleNamespace(get_device_details=lambda g: {"device_name": "NVIDIA T4"}),
        )
    )
    assert backend.describe_device(with_gpu) == "device: GPU (NVIDIA T4)"


def test_the_device_line_on_this_machine():
    from hippo_utils.core.backend import describe_device, import_tensorflow

    tf = import_tensorflow()
    line = describe_device(tf)
    assert (
        line.startswith("device: GPU (") if tf.config.list_physical_devices("GPU") else line.startswith("device: CPU (")
    )
