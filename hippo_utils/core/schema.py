"""The schema of the ``train_eval_infer.config`` format: one frozen dataclass per section,
whose fields are the keys with their types and defaults, and the whole :class:`Config`.
Reading and checking a file is :mod:`hippo_utils.core.config`'s."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RGB = tuple[int, int, int]


# --------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class ModelSection:
    """[model]: the FlexUNet architecture and its compilation."""

    model: str = "TensorFlowFlexUNet"  # the only model here; another name is refused
    image_width: int = 512
    image_height: int = 512
    image_channels: int = 3
    input_normalize: bool = True
    normalization: bool = False
    num_classes: int = 2
    base_filters: int = 16
    base_kernels: tuple[int, int] = (11, 11)
    num_layers: int = 8
    dropout_rate: float = 0.05
    dilation: tuple[int, int] = (1, 1)
    optimizer: str = "Adam"
    learning_rate: float = 0.00007
    clipvalue: float | None = 0.5
    loss: str = "categorical_crossentropy"
    # weight of the soft Dice term of loss = "ce_dice" (1 = cross-entropy + Dice). Soft Dice
    # over-segments: it pays to take a boundary pixel already at a probability near Dice/2
    # (about 0.43), and its outputs are not calibrated (Bertels et al. 2021). Less weight lets
    # the cross-entropy, which is calibrated, place the boundary.
    dice_weight: float = 1.0
    metrics: tuple[str, ...] = ("dice_coef_multiclass",)
    show_summary: bool = False


@dataclass(frozen=True)
class TrainSection:
    """[train]: the training run and where it writes."""

    epochs: int = 100
    batch_size: int = 2
    patience: int = 10
    metrics: tuple[str, ...] = ("dice_coef_multiclass", "val_dice_coef_multiclass")
    model_dir: Path = Path("models")
    eval_dir: Path = Path("eval")
    images_dir: Path | None = None  # default: <derive.output_dir>/train/images
    masks_dir: Path | None = None
    learning_rate_reducer: bool = True
    reducer_factor: float = 0.5
    reducer_patience: int = 4
    # "plateau": the original's reducer (learning_rate_reducer); "cosine": from learning_rate down to
    # zero over `epochs` along half a cosine, the same whatever the validation curve does (new here)
    lr_schedule: str = "plateau"
    epoch_change_infer: bool = True
    epoch_change_infer_dir: Path = Path("epoch_change_infer")
    num_infer_images: int = 6
    save_weights_only: bool = True
    seed: int = 42
    monitor: str = "val_dice_fg"  # what checkpoints, early stopping and the reducer watch
    cache: str = "auto"  # auto (in memory when it fits 1 GiB), memory or none
    distribute: bool = False  # tf.distribute.MirroredStrategy over all visible GPUs
    steps_per_execution: int = 1
    # False (float32), "float16" (GPUs with tensor cores), "bfloat16" (CPUs with AMX or
    # AVX512-BF16) or "auto" (whichever this machine has); the softmax stays float32
    mixed_precision: bool | str = False
    # TensorBoard logs under eval_dir/tensorboard: losses, both Dice curves, the learning rate
    # and the epoch previews as images (open with %load_ext tensorboard, %tensorboard --logdir)
    tensorboard: bool = False
    # XLA compilation of the training step: "auto" (Keras decides), True or False
    jit_compile: bool | str = "auto"


@dataclass(frozen=True)
class AugmentSection:
    """[augment]: paired image/mask augmentation of training batches (new here)."""

    enabled: bool = False
    hflip: bool = True  # left-right mirror (hippocampi are near-symmetric)
    rotation: float = 10.0  # maximum degrees either way
    scale: tuple[float, float] = (0.9, 1.1)
    brightness: float = 0.1  # maximum shift, as a fraction of the 0..255 range
    contrast: float = 0.15  # maximum relative change


@dataclass(frozen=True)
class SplitDirsSection:
    """[valid] and [test]: an image folder and its mask folder."""

    images_dir: Path | None = None  # default: <derive.output_dir>/<split>/images
    masks_dir: Path | None = None


@dataclass(frozen=True)
class InferSection:
    """[infer]: images to segment and where the masks go."""

    images_dir: Path | None = None  # default: <derive.output_dir>/mini_test/images
    output_dir: Path = Path("mini_test_output")
    merged_dir: Path | None = None  # image | ground truth | prediction strips; default output_dir/merged
    masks_dir: Path | None = None  # ground truth for the strips; default: ../masks beside images_dir
    batch_size: int = 16
    # Volumes: the source label values of the left and right hippocampus. When the model
    # merged them into one class, its prediction is split by hemisphere; volumetry then
    # reports left, right and the asymmetry index. None for one-sided crops (MSD).
    left_right_labels: tuple[int, int] | None = (1, 2)
    keep_largest_components: int = 0  # per class; 0 keeps everything
    # Test-time augmentation: average with the prediction of the mirrored slice (columns
    # reversed). Twice the forward passes. Use it when training mirrored ([augment] hflip).
    flip_tta: bool = False
    # Volumes: average each slice's class probabilities with those of the slices before and
    # after it (weights 1/4, 1/2, 1/4) before the argmax, so that a 2D model's neighbouring
    # slices agree. For thin slices (about 1 mm, as MSD's); no extra forward passes.
    slice_smoothing: bool = False


@dataclass(frozen=True)
class MaskSection:
    """[mask]: how mask colours map to classes."""

    mask_file_format: str = ".png"
    rgb_map: dict[RGB, int] = field(default_factory=lambda: {(0, 0, 0): 0, (255, 0, 0): 1})


@dataclass(frozen=True)
class DeriveSection:
    """[derive]: turning MRI volumes into the 2D image/mask dataset (new here)."""

    source_dir: Path | None = None
    layout: str = "auto"  # auto, hfh, msd, pairs or slices (2D image/mask folders)
    output_dir: Path = Path("derived")
    plane: str = "coronal"  # coronal, axial, sagittal, or axis0/axis1/axis2 (array axis)
    image_size: tuple[int, int] | None = None  # (height, width); default: [model] size
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train, valid, test fractions
    # "subject": whole subjects go to one split (the right way). "slice": each slice is drawn
    # on its own, as the original did; neighbours of a test slice then sit in training and the
    # test scores are inflated (benchmarks/split_leakage.py measures by how much). For teaching.
    split_by: str = "subject"
    seed: int = 42
    empty_slice_ratio: float = 0.25  # label-free slices kept per labelled slice
    label_map: dict[int, int] = field(default_factory=lambda: {1: 1, 2: 1})
    intensity_percentiles: tuple[float, float] = (0.5, 99.5)
    mini_test_size: int = 6
    skip_unpaired: bool = False
    # 2.5D input: neighbouring slices on either side fed as channels (1 needs image_channels 3)
    context_slices: int = 0
    # distance in slices between those neighbours: 2 gives slices i-2, i, i+2 (a wider view
    # along the slicing axis for the same three channels)
    context_step: int = 1
    # A window around the hippocampi instead of the whole slice, so that the model sees them at
    # the scan's own resolution: "auto" learns it at derivation from the training subjects'
    # labels (their extent from the head's centre, crop_margin_mm added on every side), "none"
    # keeps whole slices. crop_box_mm is that window, (top, bottom, left, right) in mm from the
    # head's centre in display orientation: derivation records it in dataset.json, training in
    # the model folder's config (inference needs it); set it to fix a window by hand.
    crop: str = "none"
    crop_margin_mm: float = 10.0
    crop_box_mm: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class SyntheticSection:
    """[synthetic]: the embedded default data made when no real data is given (new here)."""

    n_labelled: int = 20
    n_unlabelled: int = 4
    seed: int = 2011
    atrophy_fraction: float = 0.3


@dataclass(frozen=True)
class DatasetSection:
    """[dataset]: kept for compatibility; one dataset class exists here."""

    class_name: str = "ImageCategorizedMaskDataset"  # the only one; another name is refused


@dataclass(frozen=True)
class ImageSection:
    """[image]: channel order of the 8-bit images."""

    color_order: str = "RGB"


SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "dataset": DatasetSection,
    "train": TrainSection,
    "valid": SplitDirsSection,
    "test": SplitDirsSection,
    "infer": InferSection,
    "image": ImageSection,
    "mask": MaskSection,
    "derive": DeriveSection,
    "synthetic": SyntheticSection,
    "augment": AugmentSection,
}

# Settings of the original FlexUNet system that this project accepts, so that a user's
# config loads unchanged, and does not use. Each one is reported as a notice.
ORIGINAL_UNUSED_KEYS: dict[str, set[str]] = {
    "model": {"dropout_seed_fixing", "seed", "activation", "generator"},
    "train": {
        "create_backup",
        "steps_per_epoch",
        "validation_steps",
        "dataset_splitter",
        "seedreset_callback",
        "epoch_change_tiledinfer",
        "epoch_change_tiledinfer_dir",
        "epoch_change_tiled_infer",
        "epoch_change_tiled_infer_dir",
        "image_datapath",
        "mask_datapath",
        "save_model_file",
    },
    "valid": {"image_datapath", "mask_datapath"},
    "test": {"image_datapath", "mask_datapath"},
    "infer": {"binarize", "threshold", "mask_colorize", "sharpening", "color_converter"},
    "image": {"color_converter", "gamma", "sharpening"},
    "mask": {
        "mask_datatype",
        "blur",
        "blur_size",
        "binarize",
        "threshold",
        "grayscaling",
        "color_order",
    },
}
ORIGINAL_UNUSED_SECTIONS = {
    "eval",
    "tiledinfer",
    "segmentation",
    "generator",
    "augmentor",
    "deformation",
    "distortion",
    "barrdistortion",
    "pincdistortion",
    "sharpening",
    "brightening",
}

VALID_PLANES = ("coronal", "axial", "sagittal", "axis0", "axis1", "axis2")
VALID_SPLIT_BY = ("subject", "slice")


@dataclass(frozen=True)
class Config:
    """A whole configuration: one attribute per section, plus where it came from."""

    model: ModelSection = field(default_factory=ModelSection)
    dataset: DatasetSection = field(default_factory=DatasetSection)
    train: TrainSection = field(default_factory=TrainSection)
    valid: SplitDirsSection = field(default_factory=SplitDirsSection)
    test: SplitDirsSection = field(default_factory=SplitDirsSection)
    infer: InferSection = field(default_factory=InferSection)
    image: ImageSection = field(default_factory=ImageSection)
    mask: MaskSection = field(default_factory=MaskSection)
    derive: DeriveSection = field(default_factory=DeriveSection)
    synthetic: SyntheticSection = field(default_factory=SyntheticSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    path: Path | None = None
    sections_present: frozenset[str] = frozenset()
    notices: tuple[str, ...] = ()

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the derived slices: [derive] image_size, else [model]."""
        if self.derive.image_size is not None:
            return self.derive.image_size
        return (self.model.image_height, self.model.image_width)

    def require(self, section: str, command: str) -> None:
        """Raise a ValueError if ``section`` was not in the file that ``command`` needs."""
        if section not in self.sections_present:
            raise ValueError(
                f"{self.path or 'config'}: no [{section}] section, which `{command}` needs. "
                f"Add [{section}] (see configs/demo.config for an example)."
            )

    def to_ini(self) -> str:
        """The config written back as INI text (Python literals), loadable again."""
        lines: list[str] = []
        for name in SECTIONS:
            lines.append(f"[{name}]")
            for f in dataclasses.fields(getattr(self, name)):
                value = getattr(getattr(self, name), f.name)
                if value is None and f.default is None:
                    continue  # unset; written as None only where None overrides a default
                lines.append(f"{f.name} = {_literal(value)}")
            lines.append("")
        return "\n".join(lines)


def _literal(value: Any) -> str:
    if isinstance(value, Path):
        return repr(str(value))
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        return repr(list(value))
    return repr(value)
