"""The one writer of tables and run records: CSV with a JSON twin, JSON records, and the
original system's CSV formats, each written atomically."""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hippo_utils.core.files import atomic_write_text


def write_json(path: str | os.PathLike[str], record: object) -> Path:
    """``record`` as indented JSON (numbers NumPy may have made become floats), atomically."""
    atomic_write_text(path, json.dumps(record, indent=1, default=float) + "\n")
    return Path(path)


def write_csv(rows: Sequence[Mapping], path: str | os.PathLike[str], columns: Sequence[str] | None = None) -> Path:
    """Rows to CSV, atomically; ``columns`` in this order (default: every key, first seen first)."""
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def write_table(rows: Sequence[Mapping], csv_path: str | os.PathLike[str], with_summary: bool = False) -> None:
    """Rows to CSV (and the same rows as JSON beside it), atomically; with ``with_summary``,
    mean and standard deviation rows of the numeric columns (NaN left out)."""
    if not rows:
        return
    csv_path = Path(csv_path)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    table = [dict(r) for r in rows]
    if with_summary:
        numeric = [c for c in cols if all(isinstance(r.get(c), (int, float)) for r in rows)]
        with warnings.catch_warnings():  # a column of NaN alone (an empty prediction's HD95) has a NaN mean
            warnings.simplefilter("ignore", RuntimeWarning)
            for stat, fn in (("mean", np.nanmean), ("std", np.nanstd)):
                table.append({cols[0]: stat, **{c: round(float(fn([r[c] for r in rows])), 4) for c in numeric}})
    write_csv(table, csv_path, cols)
    write_json(csv_path.with_suffix(".json"), table)


def write_history_csv(
    path: str | os.PathLike[str], history: Mapping[str, Sequence[float]], columns: Sequence[str]
) -> None:
    """Per-epoch values in the original system's ``epoch,metric,val_metric,`` format."""
    cols = [c for c in columns if c in history]
    epochs = len(history.get("loss", []))
    lines = ["epoch," + "".join(f"{c}," for c in cols)]
    lines += [f"{e}, " + ", ".join(f"{history[c][e]:.4f}" for c in cols) for e in range(epochs)]
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_key_values(path: str | os.PathLike[str], values: Mapping[str, float]) -> None:
    """``key,value`` lines, 4 decimals: the original's ``evaluation.csv``."""
    atomic_write_text(path, "".join(f"{k},{v:.4f}\n" for k, v in values.items()))


def read_rows(json_path: str | os.PathLike[str], key: str) -> list[dict]:
    """The rows of a table that :func:`write_table` wrote (its JSON twin), less the summary
    rows (those without ``key``); empty when there is none.

    Raises:
        ValueError: not such a table, or one written before rows carried ``key`` (adding to
            it would lose its rows), naming the file.
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        return []
    try:
        rows = json.loads(json_path.read_text())
    except ValueError as exc:
        rows = exc
    if not isinstance(rows, list):
        raise ValueError(f"{json_path}: not a table this version wrote ({rows!r}); use another folder")
    summaries = ("mean", "std")
    if any(key not in r and next(iter(r.values()), None) not in summaries for r in rows):
        raise ValueError(
            f"{json_path}: a table from an older version, whose rows do not name their {key}; "
            "adding to it would lose them. Use another folder"
        )
    return [r for r in rows if key in r]


def merge_rows(old: Sequence[Mapping], new: Sequence[Mapping], key: str) -> list[dict]:
    """``old`` with the rows of the same ``key`` replaced by ``new`` ones, in place, then the
    rest of ``new``: nothing of ``old`` is dropped."""
    fresh = {r[key]: dict(r) for r in new}
    kept = [fresh.pop(r[key], dict(r)) for r in old]
    return kept + list(fresh.values())
