"""TensorFlow's C++ start-up lines never reach a user: the CLI and the notebooks import it
through hippo_utils.backend.import_tensorflow."""

from __future__ import annotations

import subprocess
import sys

from hippo_utils.backend import without_chatter

STARTUP = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
           "I0000 00:00:1795609141.291294    7779 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
           "GPU will not be used.\n"
           "E0000 00:00:1795611615.662685   15700 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n")


def test_start_up_notices_are_dropped_and_other_lines_kept():
    assert without_chatter(STARTUP) == ""
    assert without_chatter(STARTUP + "ImportError: libfoo.so: cannot open\n") == "ImportError: libfoo.so: cannot open\n"


def test_importing_tensorflow_prints_nothing_then_works():
    code = ("from hippo_utils.backend import import_tensorflow\n"
            "tf = import_tensorflow()\n"
            "assert import_tensorflow() is tf\n"
            "print(float(tf.reduce_sum(tf.ones((2, 3)))))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "6.0" and done.stderr == "", done.stderr
