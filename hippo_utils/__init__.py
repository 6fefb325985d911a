"""hippo_utils: hippocampus segmentation of T1-weighted MRI with a configurable U-Net.

The verbs of the pipeline are importable from here (``from hippo_utils import train``);
importing the package is cheap and has no side effects, because each verb's module
(and TensorFlow with it) is imported on first use.

The sub-packages follow the notebooks: ``data`` (01), ``model`` (02), ``training`` (03),
``evaluation`` (04), ``inference`` (05) and ``display`` (06), on the foundations of
``core``; each opens with a docstring that says which notebook it serves and what to read
first (``core``: what a learner can skip). The *modules* form layers, which cut across the
folders: a module imports only from its own layer or the ones below, and no modules import
each other in a circle (``tests/test_layers.py`` checks it). In this list a sub-package
stands for those of its modules not named in another layer:

1. foundations: ``_version``, ``core``, and the registries that the config check reads
   names from: ``model.losses`` (losses, metrics, optimizers) and ``data.layouts`` (with
   ``data.volumes``, which it finds volume files with);
2. data, and drawing (which takes arrays, not folders): ``data``, ``display.pictures``,
   ``display.figures``;
3. the model: ``model``;
4. pipelines: ``training``, ``evaluation``, ``inference``;
5. front ends: ``display``, ``notebook``, ``cli`` and this package root.

Training knows nothing of widgets: the notebook hands its live panel to :func:`train`.
"""

from hippo_utils._version import __version__
from hippo_utils.core.config import Config, load_config

# name -> the module that defines it; imported when first asked for
_LAZY = {
    "resolve_source": "data.sources",
    "ensure_dataset": "data.sources",
    "source_of": "data.derive",
    "find_subjects": "data.layouts",
    "load_volume": "data.volumes",
    "load_labels": "data.volumes",
    "normalize_intensity": "data.preprocess",
    "Labels": "data.labels",
    "derive_dataset": "data.derive",
    "read_manifest": "data.derive",
    "split_summary": "data.derive",
    "split_volumes": "data.derive",
    "sample_slices": "data.derive",
    "leakage_example": "data.derive",
    "make_dataset": "data.dataset",
    "split_pairs": "data.dataset",
    "load_images": "data.dataset",
    "load_masks": "data.dataset",
    "build_flexunet": "model.flexunet",
    "train": "training.trainer",
    "ensure_trained": "training.trainer",
    "load_model_dir": "model.folder",
    "has_run": "model.folder",
    "read_epoch_previews": "model.folder",
    "evaluate": "evaluation.evaluate",
    "infer_volumes": "inference.segment",
    "infer_volume": "inference.segment",
    "infer_folder": "inference.segment",
    "read_synthetic_truth": "inference.volumetry",
    "volumetry_against_truth": "inference.volumetry",
    "LiveTrainingPanel": "display.widgets",
    "SliceViewer": "display.viewer",
}

# the modules the notebooks use by name (``from hippo_utils import figures``)
_MODULES = {"figures": "display.figures", "pictures": "display.pictures", "metrics": "model.metrics"}

__all__ = ["Config", "__version__", "load_config", *_LAZY, *_MODULES]


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(f"hippo_utils.{_LAZY[name]}"), name)
    if name in _MODULES:
        return importlib.import_module(f"hippo_utils.{_MODULES[name]}")
    raise AttributeError(f"module 'hippo_utils' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_MODULES))
