"""hippo_utils: hippocampus segmentation of T1-weighted MRI with a configurable U-Net.

The verbs of the pipeline are importable from here (``from hippo_utils import train``);
importing the package is cheap and has no side effects, because each verb's module
(and TensorFlow with it) is imported on first use.

The modules form layers, and a module imports only from its own layer or the ones below
(``tests/test_layers.py`` checks it):

1. foundations: ``_version``, ``ownership``, ``fsutil``, ``locks``, ``download``, ``backend``, ``png``,
   ``tables``, ``config_schema``, ``config``;
2. geometry and labels: ``volumes``, ``postprocess``, ``labels``, ``preprocess``;
3. data and model: ``synthetic``, ``layouts``, ``derive``, ``data``, ``dataset``,
   ``metrics``, ``volumetry``, ``model``, ``precision``, ``model_dir``, ``plots``;
4. pipelines: ``callbacks``, ``trainer``, ``predict``, ``inference``, ``evaluation``;
5. front ends: ``widgets``, ``viewer``, ``notebook``, ``cli`` and this package root.

Training knows nothing of widgets: the notebook hands its live panel to :func:`train`.
"""

from hippo_utils._version import __version__
from hippo_utils.config import Config, load_config

# name -> the module that defines it; imported when first asked for
_LAZY = {
    "resolve_source": "data", "ensure_dataset": "data", "source_of": "derive",
    "find_subjects": "layouts", "load_volume": "volumes", "load_labels": "volumes",
    "normalize_intensity": "preprocess", "Labels": "labels",
    "derive_dataset": "derive", "read_manifest": "derive", "split_summary": "derive", "split_volumes": "derive",
    "make_dataset": "dataset", "split_pairs": "dataset", "load_images": "dataset", "load_masks": "dataset",
    "build_flexunet": "model", "train": "trainer", "ensure_trained": "trainer",
    "load_model_dir": "model_dir", "has_run": "model_dir",
    "evaluate": "evaluation", "infer_volumes": "inference", "infer_volume": "inference",
    "infer_folder": "inference", "read_synthetic_truth": "volumetry", "volumetry_against_truth": "volumetry",
    "LiveTrainingPanel": "widgets", "SliceViewer": "viewer",
}

__all__ = ["Config", "__version__", "load_config", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"hippo_utils.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'hippo_utils' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
