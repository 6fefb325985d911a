"""hippo_utils: hippocampus segmentation of T1-weighted MRI with a configurable U-Net.

Importing this package is cheap and has no side effects: TensorFlow is imported only
by the modules that build or run models.
"""

from hippo_utils.config import Config, load_config

__version__ = "0.1.0"

__all__ = ["Config", "load_config", "__version__"]
