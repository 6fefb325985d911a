"""TensorFlow, imported without its C++ start-up chatter.

While it is imported, TensorFlow 2.21 writes lines such as "All log messages before
absl::InitializeLog() is called are written to STDERR" and "cudart_stub.cc:31] Could not
find cuda drivers on your machine" straight to the process's standard error. They come
before TensorFlow's own logging starts, so ``TF_CPP_MIN_LOG_LEVEL`` does not hide them, and
a notebook shows them as cell output. :func:`import_tensorflow` catches that file
descriptor during the import and passes on every line that is not such a notice.

An explicit call (the CLI and the notebooks make it): importing this module does nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile

# Start-up notices that say nothing a user can act on (no GPU on a CPU machine, oneDNN on).
CHATTER = (
    "absl::InitializeLog()",
    "cudart_stub.cc",
    "Could not find cuda drivers",
    "oneDNN custom operations are on",
    "cpu_feature_guard.cc",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "TF-TRT Warning: Could not find TensorRT",
    "failed call to cuInit",
)


def without_chatter(text: str) -> str:
    """``text`` less the lines that are TensorFlow start-up notices."""
    kept = [line for line in text.splitlines() if line.strip() and not any(c in line for c in CHATTER)]
    return "".join(f"{line}\n" for line in kept)


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
        try:
            import tensorflow

            tensorflow.config.list_physical_devices()  # device start-up notices (cuInit) come here
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            rest = without_chatter(caught.read().decode("utf-8", errors="replace"))
            if rest:
                sys.stderr.write(rest)
    return tensorflow
