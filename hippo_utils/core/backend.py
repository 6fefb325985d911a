"""TensorFlow, imported without its C++ start-up chatter.

While it is imported, TensorFlow 2.21 writes lines such as "All log messages before
absl::InitializeLog() is called are written to STDERR" and "cudart_stub.cc:31] Could not
find cuda drivers on your machine" straight to the process's standard error. They come
before TensorFlow's own logging starts, so ``TF_CPP_MIN_LOG_LEVEL`` does not hide them, and
a notebook shows them as cell output. :func:`import_tensorflow` catches that file
descriptor during the import and passes on every line that is not such a notice; the CUDA
ones pass too when the machine has an NVIDIA GPU that TensorFlow does not see (they are the
only hint why). :func:`describe_device` says in one line what training will run on.

An explicit call (the CLI and the notebooks make it): importing this module does nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile

# Start-up notices about CUDA: noise on a machine without a GPU, the one hint a GPU user gets
# when the driver or TensorFlow's CUDA libraries fail.
CUDA_NOTICES = (
    "cudart_stub.cc",
    "Could not find cuda drivers",
    "failed call to cuInit",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "TF-TRT Warning: Could not find TensorRT",
)
# Start-up notices that say nothing a user can act on (oneDNN on, CPU instructions).
CHATTER = (
    "absl::InitializeLog()",
    "oneDNN custom operations are on",
    "cpu_feature_guard.cc",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "computation placer already registered",
    *CUDA_NOTICES,
)


def without_chatter(text: str, keep_cuda: bool = False) -> str:
    """``text`` less the lines that are TensorFlow start-up notices (the CUDA ones kept with
    ``keep_cuda``: a GPU was expected and TensorFlow found none)."""
    dropped = tuple(c for c in CHATTER if not (keep_cuda and c in CUDA_NOTICES))
    kept = [line for line in text.splitlines() if line.strip() and not any(c in line for c in dropped)]
    return "".join(f"{line}\n" for line in kept)


def gpu_expected() -> str | None:
    """What says this machine has an NVIDIA GPU (None: nothing does, or CUDA_VISIBLE_DEVICES
    hides it on purpose): then a TensorFlow that sees no GPU deserves a word."""
    import shutil

    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return None
    if os.environ.get("COLAB_GPU", "").strip() not in ("", "0"):
        return "Colab's GPU runtime"
    if os.path.exists("/dev/nvidiactl"):
        return "/dev/nvidiactl"
    if shutil.which("nvidia-smi"):
        return "nvidia-smi"
    return None


def cpu_cores() -> int:
    """The cores this process may run on (a container's share, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def describe_device(tf=None) -> str:
    """The device training and inference will run on, in one line: the GPU's name, or the CPU
    (with a warning when a GPU was expected but TensorFlow sees none)."""
    tf = tf or import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            try:
                names.append(tf.config.experimental.get_device_details(gpu).get("device_name") or gpu.name)
            except (ValueError, RuntimeError):
                names.append(gpu.name)
        return f"device: GPU ({', '.join(names)})"
    expected = gpu_expected()
    if expected and os.name == "nt":  # TensorFlow has no GPU build for native Windows
        return f"device: CPU ({cpu_cores()} cores; TensorFlow uses an NVIDIA GPU on Windows only inside WSL2)"
    if expected:
        return (
            f"device: CPU ({cpu_cores()} cores). WARNING: {expected} says this machine has an NVIDIA GPU, "
            "but TensorFlow sees none: the CUDA lines above say why (pip install 'tensorflow[and-cuda]'; "
            "on Colab, Runtime > Change runtime type)"
        )
    return f"device: CPU ({cpu_cores()} cores; no GPU)"


def import_tensorflow():
    """``import tensorflow``, with its start-up notices on standard error left out.

    Returns the module. A second call (or one after TensorFlow was imported elsewhere)
    just returns it. Errors and any other output of the import still show.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no standard error descriptor to catch (an embedded interpreter)
        import tensorflow

        return tensorflow
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        gpus = None
        try:
            import tensorflow

            gpus = tensorflow.config.list_physical_devices("GPU")  # device start-up notices (cuInit) come here
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            missing_gpu = not gpus and gpu_expected() is not None  # also when the import itself failed
            rest = without_chatter(caught.read().decode("utf-8", errors="replace"), keep_cuda=missing_gpu)
            if rest:
                sys.stderr.write(rest)
    return tensorflow
