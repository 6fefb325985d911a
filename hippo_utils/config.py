"""Typed, validated reading of the FlexUNet ``train_eval_infer.config`` INI format.

The original system parsed every value with ``eval``. Here each value is a Python
literal read with :func:`ast.literal_eval`, converted to the type its key declares,
and checked. Sections and keys read as attributes named as in the file::

    cfg = load_config("configs/demo.config")
    cfg.model.num_layers, cfg.model.base_kernels, cfg.mask.rgb_map

Relative paths in a file are resolved against the folder of that file (the original
system was run from the folder holding its config). Paths given as ``--set``
overrides are resolved against the current directory, as a shell user expects.
"""

from __future__ import annotations

import ast
import configparser
import dataclasses
import difflib
import logging
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

logger = logging.getLogger(__name__)

RGB = tuple[int, int, int]


# --------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class ModelSection:
    """[model]: the FlexUNet architecture and its compilation."""

    model: str = "TensorFlowFlexUNet"
    generator: bool = False
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
class DatasetSection:
    """[dataset]: kept for compatibility; one dataset class exists here."""

    class_name: str = "ImageCategorizedMaskDataset"


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
class ImageSection:
    """[image]: channel order of the 8-bit images."""

    color_order: str = "RGB"


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


@dataclass(frozen=True)
class SyntheticSection:
    """[synthetic]: the embedded default data made when no real data is given (new here)."""

    n_labelled: int = 20
    n_unlabelled: int = 4
    seed: int = 2011
    atrophy_fraction: float = 0.3


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
    "model": {"dropout_seed_fixing", "seed", "activation"},
    "train": {
        "create_backup", "steps_per_epoch", "validation_steps", "dataset_splitter",
        "seedreset_callback", "epoch_change_tiledinfer", "epoch_change_tiledinfer_dir",
        "epoch_change_tiled_infer", "epoch_change_tiled_infer_dir", "image_datapath",
        "mask_datapath", "save_model_file",
    },
    "valid": {"image_datapath", "mask_datapath"},
    "test": {"image_datapath", "mask_datapath"},
    "infer": {"binarize", "threshold", "mask_colorize", "sharpening", "color_converter"},
    "image": {"color_converter", "gamma", "sharpening"},
    "mask": {
        "mask_datatype", "blur", "blur_size", "binarize", "threshold", "grayscaling",
        "color_order",
    },
}
ORIGINAL_UNUSED_SECTIONS = {
    "eval", "tiledinfer", "segmentation", "generator", "augmentor", "deformation",
    "distortion", "barrdistortion", "pincdistortion", "sharpening", "brightening",
}

VALID_LAYOUTS = ("auto", "hfh", "msd", "pairs", "slices")
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


# ----------------------------------------------------------------------- conversion
class _Where:
    """Names the place of a value in messages: file, section and key."""

    def __init__(self, path: Path | str | None, section: str, key: str):
        self.path, self.section, self.key = path, section, key

    def __str__(self) -> str:
        prefix = f"{self.path}: " if self.path else ""
        return f"{prefix}[{self.section}] {self.key}"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or None"
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return "a tuple (" + ", ".join(_type_name(a) for a in args) + ")"
    if origin is dict:
        k, v = typing.get_args(tp)
        return f"a dict {{{_type_name(k)}: {_type_name(v)}}}"
    if tp is Path:
        return 'a path string such as "./models/"'
    return {int: "an integer", float: "a number", bool: "True or False", str: "a quoted string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(value: Any, tp: Any, where: _Where, base_dir: Path) -> Any:
    """Convert a literal to ``tp`` or raise a ValueError naming ``where``."""

    def fail() -> typing.NoReturn:
        raise ValueError(f"{where}: expected {_type_name(tp)}, got {value!r}")

    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where, base_dir)
            except ValueError:
                continue
        fail()
    if tp is bool:
        if isinstance(value, bool):
            return value
        fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        fail()
    if tp is str:
        if isinstance(value, str):
            return value
        fail()
    if tp is Path:
        if isinstance(value, (str, Path)) and str(value).strip():
            p = Path(_expand_vars(os.path.expanduser(str(value))))
            return Path(os.path.normpath(p if p.is_absolute() else base_dir / p))
        fail()
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (tuple, list)):
            fail()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], where, base_dir) for v in value)
        if len(value) != len(args):
            fail()
        return tuple(_convert(v, a, where, base_dir) for v, a in zip(value, args, strict=True))
    if origin is dict:
        if not isinstance(value, dict):
            fail()
        kt, vt = typing.get_args(tp)
        return {
            _convert(k, kt, where, base_dir): _convert(v, vt, where, base_dir)
            for k, v in value.items()
        }
    raise TypeError(f"unsupported config type {tp!r}")  # a bug in this module, not user input


def _expand_vars(text: str) -> str:
    """Expand ``$VAR``/``${VAR}`` that are set and non-empty; leave others visible, so
    that a "not found" error still names the variable."""
    def sub(m: re.Match[str]) -> str:
        return os.environ.get(m.group(1) or m.group(2)) or m.group(0)
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, text)


def _parse_literal(text: str, where: _Where, tp: Any, lenient_strings: bool) -> Any:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        wants_text = tp in (str, Path) or str in typing.get_args(tp) or Path in typing.get_args(tp)
        if lenient_strings and wants_text:
            return text.strip()
        hint = ' Strings must be quoted, e.g. "Adam".' if wants_text else ""
        raise ValueError(
            f"{where}: malformed value {text.strip()!r}; expected a Python literal "
            f"({_type_name(tp)}).{hint}"
        ) from None


def _closest(word: str, choices: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


def _section_fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


# ------------------------------------------------------------------- shipped configs
_PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"  # in a wheel: hippo_utils/configs/


def shipped_config_dir() -> Path:
    """The folder of the configs that come with the project: ``hippo_utils/configs/`` in an
    installed package, ``configs/`` at the root of a checkout (an editable install)."""
    if _PACKAGED_CONFIGS.is_dir():
        return _PACKAGED_CONFIGS
    return Path(__file__).resolve().parents[1] / "configs"


def shipped_configs() -> list[str]:
    """The names of the shipped configs (``demo``, ``ci``, ...)."""
    return sorted(p.stem for p in shipped_config_dir().glob("*.config"))


def workspace() -> Path:
    """Where the outputs of a config loaded from an installed package go: ``$HIPPO_WORKDIR``,
    else the current folder (``/content`` on Colab)."""
    return Path(os.environ.get("HIPPO_WORKDIR") or Path.cwd()).resolve()


def resolve_config(name_or_path: str | os.PathLike[str]) -> Path:
    """A config file: an existing path, or the name of a shipped config (``"demo"``,
    ``"demo.config"``).

    Raises:
        FileNotFoundError: neither, with the shipped names.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = str(name_or_path)
    if text and "/" not in text and os.sep not in text:
        shipped = shipped_config_dir() / (text if text.endswith(".config") else f"{text}.config")
        if shipped.is_file():
            return shipped
    raise FileNotFoundError(f"config file not found: {name_or_path} (give a path, or the name of a shipped "
                            f"config: {', '.join(shipped_configs())})")


def config_base_dir(path: Path) -> Path:
    """The folder that relative paths in the config at ``path`` start from: the config's own
    folder, except for a config inside an installed package, whose ``../runs``, ``../data``
    land in :func:`workspace` as if the config lay in its ``configs/`` folder."""
    folder = path.resolve().parent
    if folder == _PACKAGED_CONFIGS:
        return workspace() / "configs"
    return folder


# ---------------------------------------------------------------------------- loading
def load_config(path: str | os.PathLike[str], overrides: typing.Sequence[str] = ()) -> Config:
    """Read, type-check and validate a ``train_eval_infer.config`` file.

    Args:
        path: the INI file, or the name of a shipped config (:func:`resolve_config`).
            ``;`` and ``#`` start comment lines.
        overrides: ``"section.key=value"`` strings applied after the file, parsed and
            validated the same way (an unquoted value is taken as a string where the key
            wants a string or a path).

    Returns:
        The typed :class:`Config`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a section, key or value is invalid; the message names the file,
            section and key and says what would be valid.
    """
    path = resolve_config(path)
    parser = configparser.ConfigParser(
        interpolation=None, comment_prefixes=(";", "#"), inline_comment_prefixes=None,
        strict=True, empty_lines_in_values=False,
    )
    parser.optionxform = str  # keys are case-sensitive, as in the original
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except configparser.Error as exc:
        raise ValueError(f"{path}: not a valid INI file: {exc}") from None

    base_dir = config_base_dir(path)
    raw: dict[str, dict[str, Any]] = {}
    notices: list[str] = []
    for section in parser.sections():
        if section in ORIGINAL_UNUSED_SECTIONS:
            notices.append(f"{path}: [{section}] belongs to the original FlexUNet system "
                           "and is not used here; ignored.")
            continue
        if section not in SECTIONS:
            raise ValueError(
                f"{path}: unknown section [{section}].{_closest(section, SECTIONS)} "
                f"Valid sections: {', '.join(SECTIONS)}."
            )
        fields_ = _section_fields(SECTIONS[section])
        raw[section] = {}
        for key, text in parser.items(section):
            where = _Where(path, section, key)
            if key not in fields_:
                if key in ORIGINAL_UNUSED_KEYS.get(section, ()):
                    notices.append(f"{where} is a setting of the original FlexUNet system "
                                   "that this project does not use; ignored.")
                    continue
                raise ValueError(
                    f"{where}: unknown key.{_closest(key, fields_)} "
                    f"Valid keys in [{section}]: {', '.join(fields_)}."
                )
            value = _parse_literal(text, where, fields_[key], lenient_strings=False)
            raw[section][key] = _convert(value, fields_[key], where, base_dir)

    for item in overrides:
        section, key, value = _parse_override(item, path)
        raw.setdefault(section, {})[key] = value
    for note in notices:
        logger.info(note)
    return _build(raw, path, frozenset(parser.sections()) | frozenset(raw), tuple(notices))


def _parse_override(item: str, path: Path) -> tuple[str, str, Any]:
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ValueError(f"--set {item!r}: expected section.key=value, "
                         "e.g. --set derive.output_dir=out/derived")
    name, text = item.split("=", 1)
    section, key = name.strip().split(".", 1)
    if section not in SECTIONS:
        raise ValueError(f"--set {item!r}: unknown section [{section}].{_closest(section, SECTIONS)}")
    fields_ = _section_fields(SECTIONS[section])
    if key not in fields_:
        raise ValueError(f"--set {item!r}: unknown key [{section}] {key}.{_closest(key, fields_)} "
                         f"Valid keys: {', '.join(fields_)}.")
    where = _Where("--set", section, key)
    value = _parse_literal(text, where, fields_[key], lenient_strings=True)
    return section, key, _convert(value, fields_[key], where, Path.cwd())


def _build(raw: dict[str, dict[str, Any]], path: Path | None, present: frozenset[str],
           notices: tuple[str, ...]) -> Config:
    sections = {name: cls(**raw.get(name, {})) for name, cls in SECTIONS.items()}
    cfg = Config(**sections, path=path, sections_present=present, notices=notices)
    cfg = _fill_dataset_dirs(cfg)
    validate(cfg)
    return cfg


def _fill_dataset_dirs(cfg: Config) -> Config:
    """Folders left unset default to the split folders of the derived dataset."""
    out = cfg.derive.output_dir
    if not out.is_absolute() and cfg.path is not None:
        out = config_base_dir(cfg.path) / out
    derive = dataclasses.replace(cfg.derive, output_dir=out)

    def dirs(section: Any, split: str) -> Any:
        return dataclasses.replace(
            section,
            images_dir=section.images_dir or out / split / "images",
            masks_dir=section.masks_dir or out / split / "masks",
        )

    infer = cfg.infer
    if infer.images_dir is None:
        infer = dataclasses.replace(infer, images_dir=out / "mini_test" / "images")
    return dataclasses.replace(
        cfg, derive=derive, train=dirs(cfg.train, "train"), valid=dirs(cfg.valid, "valid"),
        test=dirs(cfg.test, "test"), infer=infer,
    )


# ------------------------------------------------------------------------- validation
def validate(cfg: Config) -> None:
    """Check values that types alone cannot; raise a ValueError naming the key."""
    src = cfg.path or "config"

    def err(section: str, key: str, msg: str) -> typing.NoReturn:
        raise ValueError(f"{_Where(src, section, key)}: {msg}")

    m = cfg.model
    for key in ("image_width", "image_height", "image_channels", "num_classes",
                "base_filters", "num_layers"):
        if getattr(m, key) < 1:
            err("model", key, f"must be a positive integer, got {getattr(m, key)}")
    if m.image_channels not in (1, 3):
        err("model", "image_channels", f"must be 1 (grey) or 3 (RGB), got {m.image_channels}")
    if m.num_classes < 2:
        err("model", "num_classes", "must be at least 2 (background and one structure)")
    if m.num_layers < 2:
        err("model", "num_layers", f"must be at least 2 (one level and the bridge), got {m.num_layers}")
    for key in ("base_kernels", "dilation"):
        val = getattr(m, key)
        if val[0] != val[1] or val[0] < 1:
            err("model", key, f"must be a square pair of positive integers like (3,3), got {val}")
    if m.base_kernels[0] % 2 == 0:
        err("model", "base_kernels", f"must be odd so that 'same' padding is centred, got {m.base_kernels}")
    factor = 2 ** (m.num_layers - 1)
    for key in ("image_height", "image_width"):
        size = getattr(m, key)
        if size % factor:
            most = 1 + ((size & -size).bit_length() - 1)  # each level halves the image
            err("model", key, f"{size} must be divisible by 2**(num_layers-1) = {factor} "
                f"for num_layers = {m.num_layers}: too many layers for this size (at most {most}); "
                f"use a multiple of {factor} or fewer layers")
    if not 0 <= m.dropout_rate < 1:
        err("model", "dropout_rate", f"must be in [0, 1), got {m.dropout_rate}")
    if m.dropout_rate * (m.num_layers - 1) >= 1:
        err("model", "dropout_rate", f"dropout_rate * (num_layers-1) = "
            f"{m.dropout_rate * (m.num_layers - 1):g} must stay below 1 (the deepest level's rate)")
    if m.learning_rate <= 0:
        err("model", "learning_rate", f"must be positive, got {m.learning_rate}")
    if m.clipvalue is not None and m.clipvalue <= 0:
        err("model", "clipvalue", f"must be positive or None, got {m.clipvalue}")
    if m.dice_weight < 0:
        err("model", "dice_weight", f"must be zero or more, got {m.dice_weight}")

    t = cfg.train
    for key in ("epochs", "batch_size"):
        if getattr(t, key) < 1:
            err("train", key, f"must be at least 1, got {getattr(t, key)}")
    for key in ("patience", "reducer_patience", "num_infer_images"):
        if getattr(t, key) < 0:
            err("train", key, f"must be zero or more, got {getattr(t, key)}")
    if t.cache not in ("auto", "memory", "none"):
        err("train", "cache", f'must be "auto", "memory" or "none", got {t.cache!r}')
    if not t.monitor.startswith("val_") and t.monitor not in ("loss", "dice_fg"):
        err("train", "monitor", f"{t.monitor!r}: use a logged metric such as \"val_dice_fg\" "
            "or \"val_loss\"")
    if t.steps_per_execution < 1:
        err("train", "steps_per_execution", f"must be at least 1, got {t.steps_per_execution}")
    a = cfg.augment
    if not 0 <= a.rotation <= 45:
        err("augment", "rotation", f"must be 0..45 degrees, got {a.rotation}")
    if not 0.5 <= a.scale[0] <= a.scale[1] <= 2:
        err("augment", "scale", f"need 0.5 <= low <= high <= 2, got {a.scale}")
    if t.lr_schedule not in ("plateau", "cosine"):
        err("train", "lr_schedule", f'must be "plateau" or "cosine", got {t.lr_schedule!r}')
    if t.lr_schedule == "cosine" and t.learning_rate_reducer:
        err("train", "lr_schedule", '"cosine" sets the learning rate of every epoch itself; set '
            "learning_rate_reducer = False too, or keep lr_schedule = \"plateau\"")
    if not 0 < t.reducer_factor < 1:
        err("train", "reducer_factor", f"must be between 0 and 1, got {t.reducer_factor}")

    i = cfg.infer
    if i.batch_size < 1:
        err("infer", "batch_size", f"must be at least 1, got {i.batch_size}")
    if i.keep_largest_components < 0:
        err("infer", "keep_largest_components", f"must be zero or more, got {i.keep_largest_components}")
    if i.left_right_labels is not None and (len(set(i.left_right_labels)) != 2 or min(i.left_right_labels) < 1):
        err("infer", "left_right_labels", f"two different labels > 0, or None; got {i.left_right_labels}")
    if cfg.image.color_order not in ("RGB", "BGR"):
        err("image", "color_order", f'must be "RGB" or "BGR", got {cfg.image.color_order!r}')

    c = cfg.derive.context_slices
    if c < 0 or (c and 2 * c + 1 != m.image_channels):
        err("derive", "context_slices", f"{c}: use 0 (one slice, grey) or 1 (slices i-1, i, i+1 as the "
            f"3 channels, with [model] image_channels = 3); [model] image_channels is {m.image_channels}")
    if cfg.derive.context_step < 1:
        err("derive", "context_step", f"must be 1 (adjacent slices) or more, got {cfg.derive.context_step}")
    if cfg.derive.context_step != 1 and not c:
        err("derive", "context_step", f"{cfg.derive.context_step} spaces the neighbouring slices of "
            "context_slices = 1; with context_slices = 0 there are none (set context_slices = 1, or remove it)")
    if c and cfg.image.color_order != "RGB":
        err("derive", "context_slices", 'neighbouring slices are stored in RGB order; set [image] '
            'color_order = "RGB"')

    rgb_map = cfg.mask.rgb_map
    for colour in rgb_map:
        if not all(0 <= c <= 255 for c in colour):
            err("mask", "rgb_map", f"colour {colour} has a channel outside 0..255")
    classes = sorted(rgb_map.values())
    if classes != list(range(len(rgb_map))):
        err("mask", "rgb_map", f"class indices must be 0..{len(rgb_map) - 1}, each once; got {classes}")
    if m.num_classes != len(rgb_map):
        err("model", "num_classes", f"is {m.num_classes} but [mask] rgb_map has {len(rgb_map)} "
            f"colours (classes {classes}); they must agree")
    if cfg.mask.mask_file_format.lower() not in (".png",):
        err("mask", "mask_file_format", f'only ".png" is supported (lossless), got '
            f"{cfg.mask.mask_file_format!r}")

    d = cfg.derive
    if d.layout not in VALID_LAYOUTS:
        err("derive", "layout", f"{d.layout!r} is not one of {', '.join(VALID_LAYOUTS)}."
            f"{_closest(d.layout, VALID_LAYOUTS)}")
    if d.plane not in VALID_PLANES:
        err("derive", "plane", f"{d.plane!r} is not one of {', '.join(VALID_PLANES)}."
            f"{_closest(d.plane, VALID_PLANES)}")
    if any(f < 0 for f in d.split) or abs(sum(d.split) - 1) > 1e-6 or d.split[0] == 0:
        err("derive", "split", f"train, valid and test fractions must be >= 0, sum to 1 and "
            f"give train a share; got {d.split}")
    if d.split_by not in VALID_SPLIT_BY:
        err("derive", "split_by", f"{d.split_by!r} is not one of {', '.join(VALID_SPLIT_BY)}")
    if d.empty_slice_ratio < 0:
        err("derive", "empty_slice_ratio", f"must be zero or more, got {d.empty_slice_ratio}")
    lo, hi = d.intensity_percentiles
    if not 0 <= lo < hi <= 100:
        err("derive", "intensity_percentiles", f"need 0 <= low < high <= 100, got {(lo, hi)}")
    if d.image_size is not None and min(d.image_size) < 8:
        err("derive", "image_size", f"must be at least (8, 8), got {d.image_size}")
    if cfg.image_size != (m.image_height, m.image_width):
        err("derive", "image_size", f"{cfg.image_size} differs from [model] image_height, "
            f"image_width = {(m.image_height, m.image_width)}; the model reads the derived slices")
    for src_label, cls in d.label_map.items():
        if src_label <= 0:
            err("derive", "label_map", f"source label {src_label}: only labels > 0 are mapped "
                "(0 is background)")
        if not 0 <= cls < m.num_classes:
            err("derive", "label_map", f"label {src_label} -> class {cls}, but classes run "
                f"0..{m.num_classes - 1} ([model] num_classes = {m.num_classes})")
    syn = cfg.synthetic
    if syn.n_labelled < 3 or syn.n_unlabelled < 0:
        err("synthetic", "n_labelled", f"need at least 3 labelled subjects (one per split), got "
            f"{syn.n_labelled}")
    if not 0 <= syn.atrophy_fraction <= 1:
        err("synthetic", "atrophy_fraction", f"must be in [0, 1], got {syn.atrophy_fraction}")
    if d.mini_test_size < 0:
        err("derive", "mini_test_size", f"must be zero or more, got {d.mini_test_size}")
