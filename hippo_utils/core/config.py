"""Reading a FlexUNet ``train_eval_infer.config`` INI file into a typed, checked :class:`Config`
(the sections and keys themselves are :mod:`hippo_utils.core.schema`'s).

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
import codecs
import configparser
import dataclasses
import difflib
import logging
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Union

from hippo_utils.core.schema import (  # noqa: F401 (the config's public names live here too)
    ORIGINAL_UNUSED_KEYS,
    ORIGINAL_UNUSED_SECTIONS,
    RGB,
    SECTIONS,
    VALID_PLANES,
    VALID_SPLIT_BY,
    AugmentSection,
    Config,
    DatasetSection,
    DeriveSection,
    ImageSection,
    InferSection,
    MaskSection,
    ModelSection,
    SplitDirsSection,
    SyntheticSection,
    TrainSection,
)
from hippo_utils.model.losses import LOSSES, METRICS, OPTIMIZERS, logged_names

logger = logging.getLogger(__name__)


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


# scalar type -> (which literals it takes, how they convert); True is not an integer here
_SCALARS: dict[type, tuple[typing.Callable[[Any], bool], typing.Callable[[Any], Any]]] = {
    bool: (lambda v: isinstance(v, bool), lambda v: v),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), lambda v: v),
    float: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), float),
    str: (lambda v: isinstance(v, str), lambda v: v),
}


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
    if tp in _SCALARS:
        accepts, convert = _SCALARS[tp]
        if accepts(value):
            return convert(value)
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
        return {_convert(k, kt, where, base_dir): _convert(v, vt, where, base_dir) for k, v in value.items()}
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
            f"{where}: malformed value {text.strip()!r}; expected a Python literal ({_type_name(tp)}).{hint}"
        ) from None


def _closest(word: str, choices: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


def _section_fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


# ------------------------------------------------------------------- shipped configs
_PACKAGED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # in a wheel: hippo_utils/configs/


def shipped_config_dir() -> Path:
    """The folder of the configs that come with the project: ``hippo_utils/configs/`` in an
    installed package, ``configs/`` at the root of a checkout (an editable install)."""
    if _PACKAGED_CONFIGS.is_dir():
        return _PACKAGED_CONFIGS
    return Path(__file__).resolve().parents[2] / "configs"


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
    raise FileNotFoundError(
        f"config file not found: {name_or_path} (give a path, or the name of a shipped "
        f"config: {', '.join(shipped_configs())})"
    )


def config_base_dir(path: Path) -> Path:
    """The folder that relative paths in the config at ``path`` start from: the config's own
    folder, except for a config inside an installed package, whose ``../runs``, ``../data``
    land in :func:`workspace` as if the config lay in its ``configs/`` folder."""
    folder = path.resolve().parent
    if folder == _PACKAGED_CONFIGS:
        return workspace() / "configs"
    return folder


# ---------------------------------------------------------------------------- loading
def read_config_text(path: Path) -> str:
    """The text of a config file: UTF-8, or UTF-8/UTF-16 with a byte-order mark (as Windows
    editors save them), decoded as such.

    Raises:
        ValueError: any other encoding (it would be misread), naming the file and the line.
    """
    data = path.read_bytes()
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(codec)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"{path}: line {line} is not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file "
            "as UTF-8 (or UTF-16 with a byte-order mark)"
        ) from None


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
        interpolation=None,
        comment_prefixes=(";", "#"),
        inline_comment_prefixes=None,
        strict=True,
        empty_lines_in_values=False,
    )
    parser.optionxform = str  # keys are case-sensitive, as in the original
    try:
        parser.read_string(read_config_text(path), source=str(path))
    except configparser.Error as exc:
        raise ValueError(f"{path}: not a valid INI file: {exc}") from None

    base_dir = config_base_dir(path)
    raw: dict[str, dict[str, Any]] = {}
    notices: list[str] = []
    for section in parser.sections():
        if section in ORIGINAL_UNUSED_SECTIONS:
            notices.append(
                f"{path}: [{section}] belongs to the original FlexUNet system and is not used here; ignored."
            )
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
                    notices.append(
                        f"{where} is a setting of the original FlexUNet system that this project does not use; ignored."
                    )
                    continue
                raise ValueError(
                    f"{where}: unknown key.{_closest(key, fields_)} Valid keys in [{section}]: {', '.join(fields_)}."
                )
            value = _parse_literal(text, where, fields_[key], lenient_strings=False)
            raw[section][key] = _convert(value, fields_[key], where, base_dir)

    overridden = set()
    for item in overrides:
        section, key, value = _parse_override(item, path)
        raw.setdefault(section, {})[key] = value
        overridden.add((section, key))
    for note in notices:
        logger.info(note)
    return _build(raw, path, frozenset(parser.sections()) | frozenset(raw), tuple(notices), frozenset(overridden))


def _parse_override(item: str, path: Path) -> tuple[str, str, Any]:
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ValueError(f"--set {item!r}: expected section.key=value, e.g. --set derive.output_dir=out/derived")
    name, text = item.split("=", 1)
    section, key = name.strip().split(".", 1)
    if section not in SECTIONS:
        raise ValueError(f"--set {item!r}: unknown section [{section}].{_closest(section, SECTIONS)}")
    fields_ = _section_fields(SECTIONS[section])
    if key not in fields_:
        raise ValueError(
            f"--set {item!r}: unknown key [{section}] {key}.{_closest(key, fields_)} Valid keys: {', '.join(fields_)}."
        )
    where = _Where("--set", section, key)
    value = _parse_literal(text, where, fields_[key], lenient_strings=True)
    return section, key, _convert(value, fields_[key], where, Path.cwd())


def _build(
    raw: dict[str, dict[str, Any]],
    path: Path | None,
    present: frozenset[str],
    notices: tuple[str, ...],
    overridden: frozenset[tuple[str, str]] = frozenset(),
) -> Config:
    sections = {name: cls(**raw.get(name, {})) for name, cls in SECTIONS.items()}
    cfg = Config(**sections, path=path, sections_present=present, notices=notices)
    cfg = _fill_dataset_dirs(cfg)
    validate(cfg, overridden)
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
        cfg,
        derive=derive,
        train=dirs(cfg.train, "train"),
        valid=dirs(cfg.valid, "valid"),
        test=dirs(cfg.test, "test"),
        infer=infer,
    )


# ------------------------------------------------------------------------- validation
Invalid = typing.Callable[[str, str, str], typing.NoReturn]


def _raiser(cfg: Config, overridden: frozenset[tuple[str, str]] = frozenset()) -> Invalid:
    """``err(section, key, message)``: raise a ValueError naming the file, section and key
    (``--set`` for a value given there, not in the file)."""
    src = cfg.path or "config"

    def err(section: str, key: str, msg: str) -> typing.NoReturn:
        raise ValueError(f"{_Where('--set' if (section, key) in overridden else src, section, key)}: {msg}")

    return err


def _check_model(cfg: Config, err: Invalid) -> None:
    """[model]: sizes, depth, kernels, dropout and the optimiser's numbers."""
    m = cfg.model
    if m.model != "TensorFlowFlexUNet":
        err("model", "model", f'{m.model!r}: this project builds one model, the FlexUNet; use "TensorFlowFlexUNet"')
    if cfg.dataset.class_name != "ImageCategorizedMaskDataset":
        err(
            "dataset",
            "class_name",
            f'{cfg.dataset.class_name!r}: this project reads one kind of dataset; use "ImageCategorizedMaskDataset"',
        )
    for key in ("image_width", "image_height", "image_channels", "num_classes", "base_filters", "num_layers"):
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
            err(
                "model",
                key,
                f"{size} must be divisible by 2**(num_layers-1) = {factor} "
                f"for num_layers = {m.num_layers}: too many layers for this size (at most {most}); "
                f"use a multiple of {factor} or fewer layers",
            )
    if not 0 <= m.dropout_rate < 1:
        err("model", "dropout_rate", f"must be in [0, 1), got {m.dropout_rate}")
    if m.dropout_rate * (m.num_layers - 1) >= 1:
        err(
            "model",
            "dropout_rate",
            f"dropout_rate * (num_layers-1) = "
            f"{m.dropout_rate * (m.num_layers - 1):g} must stay below 1 (the deepest level's rate)",
        )
    if m.learning_rate <= 0:
        err("model", "learning_rate", f"must be positive, got {m.learning_rate}")
    if m.clipvalue is not None and m.clipvalue <= 0:
        err("model", "clipvalue", f"must be positive or None, got {m.clipvalue}")
    if m.dice_weight < 0:
        err("model", "dice_weight", f"must be zero or more, got {m.dice_weight}")
    if m.loss not in LOSSES:
        err("model", "loss", f"{m.loss!r} is not one of {', '.join(LOSSES)}")
    if m.optimizer.lower() not in OPTIMIZERS:
        err("model", "optimizer", f"{m.optimizer!r} is not one of {', '.join(OPTIMIZERS)} (case does not matter)")
    unknown = [x for x in m.metrics if x not in METRICS]
    if unknown:
        err("model", "metrics", f"{unknown}: known metrics are {', '.join(METRICS)} (dice_fg is always logged)")


def _check_train(cfg: Config, err: Invalid) -> None:
    """[train]: epochs, batches, what is monitored and the learning-rate schedule."""
    t = cfg.train
    for key in ("epochs", "batch_size"):
        if getattr(t, key) < 1:
            err("train", key, f"must be at least 1, got {getattr(t, key)}")
    for key in ("patience", "reducer_patience", "num_infer_images"):
        if getattr(t, key) < 0:
            err("train", key, f"must be zero or more, got {getattr(t, key)}")
    if t.cache not in ("auto", "memory", "none"):
        err("train", "cache", f'must be "auto", "memory" or "none", got {t.cache!r}')
    logged = logged_names(cfg.model.metrics)
    if t.monitor not in logged:
        err("train", "monitor", f"{t.monitor!r} is not logged; use one of {', '.join(logged)}")
    bad = [x for x in t.metrics if x not in logged]
    if bad:
        err("train", "metrics", f"{bad} are not logged; valid: {', '.join(logged)}")
    if t.steps_per_execution < 1:
        err("train", "steps_per_execution", f"must be at least 1, got {t.steps_per_execution}")
    if t.lr_schedule not in ("plateau", "cosine"):
        err("train", "lr_schedule", f'must be "plateau" or "cosine", got {t.lr_schedule!r}')
    if t.lr_schedule == "cosine" and t.learning_rate_reducer:
        err(
            "train",
            "lr_schedule",
            '"cosine" sets the learning rate of every epoch itself; set '
            'learning_rate_reducer = False too, or keep lr_schedule = "plateau"',
        )
    if not 0 < t.reducer_factor < 1:
        err("train", "reducer_factor", f"must be between 0 and 1, got {t.reducer_factor}")
    if t.jit_compile not in (True, False, "auto"):
        err("train", "jit_compile", f'must be "auto", True or False, got {t.jit_compile!r}')
    if t.mixed_precision not in (False, "float16", "bfloat16", "auto"):
        err("train", "mixed_precision", f'must be False, "float16", "bfloat16" or "auto", got {t.mixed_precision!r}')


def _check_augment(cfg: Config, err: Invalid) -> None:
    """[augment]: rotation and scale ranges."""
    a = cfg.augment
    if not 0 <= a.rotation <= 45:
        err("augment", "rotation", f"must be 0..45 degrees, got {a.rotation}")
    if not 0.5 <= a.scale[0] <= a.scale[1] <= 2:
        err("augment", "scale", f"need 0.5 <= low <= high <= 2, got {a.scale}")


def _check_infer(cfg: Config, err: Invalid) -> None:
    """[infer]: batch size, post-processing and the left/right labels."""
    i = cfg.infer
    if i.batch_size < 1:
        err("infer", "batch_size", f"must be at least 1, got {i.batch_size}")
    if i.keep_largest_components < 0:
        err("infer", "keep_largest_components", f"must be zero or more, got {i.keep_largest_components}")
    if i.left_right_labels is not None and (len(set(i.left_right_labels)) != 2 or min(i.left_right_labels) < 1):
        err("infer", "left_right_labels", f"two different labels > 0, or None; got {i.left_right_labels}")


def _check_image(cfg: Config, err: Invalid) -> None:
    """[image]: the channel order."""
    if cfg.image.color_order not in ("RGB", "BGR"):
        err("image", "color_order", f'must be "RGB" or "BGR", got {cfg.image.color_order!r}')


def _check_mask(cfg: Config, err: Invalid) -> None:
    """[mask]: the colours, their classes, and their number against [model] num_classes."""
    rgb_map, m = cfg.mask.rgb_map, cfg.model
    for colour in rgb_map:
        if not all(0 <= c <= 255 for c in colour):
            err("mask", "rgb_map", f"colour {colour} has a channel outside 0..255")
    classes = sorted(rgb_map.values())
    if classes != list(range(len(rgb_map))):
        err("mask", "rgb_map", f"class indices must be 0..{len(rgb_map) - 1}, each once; got {classes}")
    if m.num_classes != len(rgb_map):
        err(
            "model",
            "num_classes",
            f"is {m.num_classes} but [mask] rgb_map has {len(rgb_map)} colours (classes {classes}); they must agree",
        )
    if cfg.mask.mask_file_format.lower() not in (".png",):
        err("mask", "mask_file_format", f'only ".png" is supported (lossless), got {cfg.mask.mask_file_format!r}')


def _check_derive_context(cfg: Config, err: Invalid) -> None:
    """[derive] context_slices and context_step: the 2.5D channels against [model] and [image]."""
    c, m = cfg.derive.context_slices, cfg.model
    if c < 0 or (c and 2 * c + 1 != m.image_channels):
        err(
            "derive",
            "context_slices",
            f"{c}: use 0 (one slice, grey) or 1 (slices i-1, i, i+1 as the "
            f"3 channels, with [model] image_channels = 3); [model] image_channels is {m.image_channels}",
        )
    if cfg.derive.context_step < 1:
        err("derive", "context_step", f"must be 1 (adjacent slices) or more, got {cfg.derive.context_step}")
    if cfg.derive.context_step != 1 and not c:
        err(
            "derive",
            "context_step",
            f"{cfg.derive.context_step} spaces the neighbouring slices of "
            "context_slices = 1; with context_slices = 0 there are none (set context_slices = 1, or remove it)",
        )
    if c and cfg.image.color_order != "RGB":
        err("derive", "context_slices", 'neighbouring slices are stored in RGB order; set [image] color_order = "RGB"')


def _check_derive(cfg: Config, err: Invalid) -> None:
    """[derive]: layout, plane, split, percentiles, size and the label map."""
    # imported here, not with this module: the registry's module reads volumes (nibabel, PIL),
    # which importing the package need not load
    from hippo_utils.data.layouts import LAYOUTS

    d, m = cfg.derive, cfg.model

    layouts = ("auto", *LAYOUTS)
    if d.layout not in layouts:
        err("derive", "layout", f"{d.layout!r} is not one of {', '.join(layouts)}.{_closest(d.layout, layouts)}")
    if d.plane not in VALID_PLANES:
        err("derive", "plane", f"{d.plane!r} is not one of {', '.join(VALID_PLANES)}.{_closest(d.plane, VALID_PLANES)}")
    if any(f < 0 for f in d.split) or abs(sum(d.split) - 1) > 1e-6 or d.split[0] == 0:
        err(
            "derive",
            "split",
            f"train, valid and test fractions must be >= 0, sum to 1 and give train a share; got {d.split}",
        )
    if d.split_by not in VALID_SPLIT_BY:
        err("derive", "split_by", f"{d.split_by!r} is not one of {', '.join(VALID_SPLIT_BY)}")
    if d.empty_slice_ratio < 0:
        err("derive", "empty_slice_ratio", f"must be zero or more, got {d.empty_slice_ratio}")
    if d.crop not in ("none", "auto"):
        err(
            "derive",
            "crop",
            f'must be "none" (whole slices) or "auto" (a window learned from the training labels), got {d.crop!r}',
        )
    if not 0 <= d.crop_margin_mm <= 100:
        err("derive", "crop_margin_mm", f"must be 0..100 mm, got {d.crop_margin_mm}")
    if d.crop_box_mm is not None:
        top, bottom, left, right = d.crop_box_mm
        if not (top < bottom and left < right):
            err(
                "derive",
                "crop_box_mm",
                f"(top, bottom, left, right) in mm with top < bottom and left < right, got {d.crop_box_mm}",
            )
    lo, hi = d.intensity_percentiles
    if not 0 <= lo < hi <= 100:
        err("derive", "intensity_percentiles", f"need 0 <= low < high <= 100, got {(lo, hi)}")
    if d.image_size is not None and min(d.image_size) < 8:
        err("derive", "image_size", f"must be at least (8, 8), got {d.image_size}")
    if cfg.image_size != (m.image_height, m.image_width):
        err(
            "derive",
            "image_size",
            f"{cfg.image_size} differs from [model] image_height, "
            f"image_width = {(m.image_height, m.image_width)}; the model reads the derived slices",
        )
    for src_label, cls in d.label_map.items():
        if src_label <= 0:
            err("derive", "label_map", f"source label {src_label}: only labels > 0 are mapped (0 is background)")
        if not 0 <= cls < m.num_classes:
            err(
                "derive",
                "label_map",
                f"label {src_label} -> class {cls}, but classes run "
                f"0..{m.num_classes - 1} ([model] num_classes = {m.num_classes})",
            )
    if d.mini_test_size < 0:
        err("derive", "mini_test_size", f"must be zero or more, got {d.mini_test_size}")


def _check_synthetic(cfg: Config, err: Invalid) -> None:
    """[synthetic]: the generator's subject counts."""
    syn = cfg.synthetic
    if syn.n_labelled < 3 or syn.n_unlabelled < 0:
        err("synthetic", "n_labelled", f"need at least 3 labelled subjects (one per split), got {syn.n_labelled}")
    if not 0 <= syn.atrophy_fraction <= 1:
        err("synthetic", "atrophy_fraction", f"must be in [0, 1], got {syn.atrophy_fraction}")


# One small check per section, in this order (a key of one section may be checked against another's).
_CHECKS = (
    _check_model,
    _check_train,
    _check_augment,
    _check_infer,
    _check_image,
    _check_derive_context,
    _check_mask,
    _check_derive,
    _check_synthetic,
)


def validate(cfg: Config, overridden: frozenset[tuple[str, str]] = frozenset()) -> None:
    """Check values that types alone cannot; raise a ValueError naming the file (or ``--set``),
    section and key."""
    err = _raiser(cfg, overridden)
    for check in _CHECKS:
        check(cfg, err)
