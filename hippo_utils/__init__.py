"""hippo_utils: hippocampus segmentation of T1-weighted MRI with a configurable U-Net.

Importing this package is cheap and has no side effects: TensorFlow is imported only
by the modules that build or run models.
"""

from hippo_utils._version import __version__
from hippo_utils.config import Config, load_config

__all__ = ["Config", "SliceViewer", "build_flexunet", "load_config", "__version__"]


def __getattr__(name: str):
    # The viewer needs ipywidgets and the model needs TensorFlow: import them on first use.
    if name == "SliceViewer":
        from hippo_utils.viewer import SliceViewer

        return SliceViewer
    if name == "build_flexunet":
        from hippo_utils.model import build_flexunet

        return build_flexunet
    raise AttributeError(f"module 'hippo_utils' has no attribute {name!r}")
