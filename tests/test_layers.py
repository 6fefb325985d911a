"""The package's layering (hippo_utils/__init__.py describes it): a module imports only from
its own layer or the layers below, at the top of the file or inside a function."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hippo_utils"

LAYERS = {
    1: {"_version", "ownership", "fsutil", "locks", "download", "backend", "png", "tables", "config_schema",
        "config"},
    2: {"volumes", "postprocess", "labels", "preprocess"},
    3: {"synthetic", "layouts", "derive", "data", "dataset", "metrics", "volumetry", "model", "precision", "model_dir",
        "plots"},
    4: {"callbacks", "trainer", "predict", "inference", "evaluation"},
    5: {"widgets", "viewer", "notebook", "cli", "__init__", "__main__"},
}
LAYER_OF = {module: layer for layer, modules in LAYERS.items() for module in modules}
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """The hippo_utils modules that ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] if "." in a.name else "__init__"
                      for a in node.names if a.name.split(".")[0] == "hippo_utils"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hippo_utils":
            if node.module == "hippo_utils":  # `from hippo_utils import plots` names a module; else the root
                found |= {a.name if a.name in MODULES else "__init__" for a in node.names}
            else:
                found.add(node.module.split(".")[1])
    return found


def test_every_module_has_a_layer():
    assert set(MODULES) == set(LAYER_OF), "place each new module in LAYERS (and in the package docstring)"


@pytest.mark.parametrize("module", MODULES)
def test_imports_point_down(module):
    upward = {m: LAYER_OF[m] for m in imported_modules(PACKAGE / f"{module}.py") if LAYER_OF[m] > LAYER_OF[module]}
    assert not upward, f"{module} (layer {LAYER_OF[module]}) imports from higher layers: {upward}"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from hippo_utils import plots, __version__\n    import hippo_utils.viewer\n"
                      "    from hippo_utils.trainer import train\n")
    assert imported_modules(source) == {"plots", "__init__", "viewer", "trainer"}


def test_the_package_docstring_describes_these_layers():
    import hippo_utils

    items = dict(re.findall(r"^(\d)\. (.*?)(?=^\d\. |^$)", hippo_utils.__doc__, re.M | re.S))
    for layer, modules in LAYERS.items():
        named = set(re.findall(r"``(\w+)``", items[str(layer)]))
        assert named == modules - {"__init__", "__main__"}, f"layer {layer} in the docstring: {named}"
