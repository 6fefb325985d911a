"""The package's layering (hippo_utils/__init__.py describes it): a module imports only from
its own layer or the layers below, at the top of the file or inside a function, and no
modules import each other in a circle, within a layer or across sub-packages."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hippo_utils"

# A sub-package name stands for all its modules; a module named on its own is the exception.
LAYERS = {
    1: {"_version", "core", "model.losses", "data.layouts", "data.volumes"},
    2: {"data", "display.pictures", "display.figures"},
    3: {"model"},
    4: {"training", "evaluation", "inference"},
    5: {"display", "notebook", "cli", "__init__", "__main__"},
}
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
    if "__pycache__" not in p.parts
)


def layer_of(module: str) -> int:
    """The layer of a module: its own entry, else its sub-package's."""
    for name in (module, module.split(".")[0]):
        for layer, names in LAYERS.items():
            if name in names:
                return layer
    raise KeyError(module)


def module_of(dotted: str) -> str:
    """``hippo_utils.a.b`` -> ``a.b`` (a module or a sub-package), ``hippo_utils`` -> ``__init__``."""
    return dotted.removeprefix("hippo_utils").removeprefix(".") or "__init__"


def imported_modules(path: Path) -> set[str]:
    """The hippo_utils modules that ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {module_of(a.name) for a in node.names if a.name.split(".")[0] == "hippo_utils"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hippo_utils":
            base = module_of(node.module)
            for a in node.names:  # `from hippo_utils.display import figures` names a module
                sub = a.name if base == "__init__" else f"{base}.{a.name}"
                found.add(sub if sub in MODULES else base)
    return found


def source_of(module: str) -> Path:
    path = PACKAGE.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


GRAPH = {m: imported_modules(source_of(m)) - {m} for m in MODULES}


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if not any(m in n or m.split(".")[0] in n for n in LAYERS.values())]
    assert not missing, "place each new module in LAYERS (and in the package docstring)"


@pytest.mark.parametrize("module", MODULES)
def test_imports_point_down(module):
    upward = {m: layer_of(m) for m in GRAPH[module] if layer_of(m) > layer_of(module)}
    assert not upward, f"{module} (layer {layer_of(module)}) imports from higher layers: {upward}"


def test_no_import_cycle():
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for other in sorted(GRAPH[module]):
            if state.get(other) == "open":
                cycle = path[path.index(other) :] + [module, other] if other in path else [module, other]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if other not in state:
                visit(other, [*path, module])
        state[module] = "done"

    for module in MODULES:
        if module not in state:
            visit(module, [])


def test_the_checker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "def f():\n    from hippo_utils.display import figures\n    from hippo_utils import __version__\n"
        "    import hippo_utils.display.viewer\n    from hippo_utils.training.trainer import train\n"
    )
    assert imported_modules(source) == {"display.figures", "__init__", "display.viewer", "training.trainer"}


def test_the_checker_sees_cycles(monkeypatch):
    monkeypatch.setitem(GRAPH, "core.tables", GRAPH["core.tables"] | {"core.config"})
    monkeypatch.setitem(GRAPH, "core.config", GRAPH["core.config"] | {"core.tables"})
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycle()


def test_each_sub_package_says_which_notebook_it_serves():
    for sub in (m for m in MODULES if "." not in m and (PACKAGE / m).is_dir()):
        doc = ast.get_docstring(ast.parse(source_of(sub).read_text()))
        assert doc and ("Notebook" in doc.split("\n")[0] or sub == "core"), f"{sub}/__init__.py: no docstring"


def test_the_package_docstring_describes_these_layers():
    import hippo_utils

    items = dict(re.findall(r"^(\d)\. (.*?)(?=^\d\. |^$)", hippo_utils.__doc__, re.M | re.S))
    for layer, modules in LAYERS.items():
        named = set(re.findall(r"``([\w.]+)``", items[str(layer)]))
        assert named == modules - {"__init__", "__main__"}, f"layer {layer} in the docstring: {named}"
