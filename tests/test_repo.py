"""Repository hygiene: dependencies in step, notebooks well-formed and output-free."""

import json
import re

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

import pytest

from hippo_utils.notebook import REPOSITORY, colab_badge_url, install_cell_source

from helpers import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CONDA_TO_PYPI = {"python": None, "pip": None, "playwright-python": "playwright"}
EXTRAS_IN_ENVIRONMENT = ("notebooks", "test", "docs", "dev")  # not gpu: Linux-only, from pip


def _name(req: str) -> str:
    return re.split(r"[<>=!\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_pyproject_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    wanted |= {_name(r) for extra in EXTRAS_IN_ENVIRONMENT for r in project["optional-dependencies"][extra]}
    text = (REPO / "environment.yml").read_text().split("dependencies:", 1)[1]
    conda = {_name(m) for m in re.findall(r"^  - (?!pip:)(\S+)$", text, re.M)}
    pip = {_name(m) for m in re.findall(r"^      - (?!-e )(\S+)$", text, re.M)}
    assert "playwright" not in conda, "conda-forge names Playwright's Python package playwright-python"
    listed = {CONDA_TO_PYPI.get(n, n) for n in conda | pip} - {None}
    assert listed == wanted


def test_notebooks_exist_in_order():
    names = [p.name for p in NOTEBOOKS]
    assert names and names[0].startswith("01_")
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, len(names) + 1)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_pictures_show_where_the_notebook_is_opened_alone(path):
    """Colab opens a notebook without the repository beside it: a picture in its text must be an
    attachment of the cell (or a web address), never a relative file path, and every attachment
    linked must be there and be a PNG."""
    import base64

    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        targets = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", text) + re.findall(r"<img[^>]+src=\"([^\"]+)\"", text)
        for target in targets:
            assert target.startswith(("attachment:", "https://")), (
                f"{path.name}: picture {target!r} is a file path; attach it to its cell (docs/tensorboard_view.py)"
            )
            if target.startswith("attachment:"):
                data = cell.get("attachments", {}).get(target.removeprefix("attachment:"), {}).get("image/png")
                assert data and base64.b64decode(data).startswith(b"\x89PNG"), f"{path.name}: {target} is not attached"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opening_badge_guard_and_no_outputs(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    first = "".join(cells[0]["source"])
    assert first.startswith("# "), "H1 title first"
    assert "You will learn" in first and "Prerequisites" in first
    badge = colab_badge_url(f"notebooks/{path.name}")
    assert f"]({badge})" in first, f"the Colab badge must point to {badge}"
    assert "".join(cells[2]["source"]) == install_cell_source(), (
        f"cell 3 must be the install cell of hippo_utils/notebook.py:\n{install_cell_source()}"
    )
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), (
        "notebooks in git carry no outputs (run nbstripout)"
    )
    # The last cell is the summary, then the next steps: each heading on its own, in that order.
    last = "".join(cells[-1]["source"])
    assert cells[-1]["cell_type"] == "markdown" and last.startswith("## Summary\n"), "the last cell: ## Summary"
    assert last.count("\n## Next steps\n") == 1, "the last cell ends with a ## Next steps section"
    summary, next_steps = last.split("\n## Next steps\n")
    assert re.search(r"^- ", summary, re.M), "the summary lists what was learnt"
    assert "\n## " not in summary[3:] and "\n## " not in next_steps, "nothing else in the closing cell"
    linked = re.findall(r"\]\(([^)\s]+\.ipynb)\)", next_steps)
    index = NOTEBOOKS.index(path)
    if index + 1 < len(NOTEBOOKS):  # links the next notebook, and only that one
        assert linked == [NOTEBOOKS[index + 1].name], f"Next steps must link {NOTEBOOKS[index + 1].name}"
    else:  # the last one sends the reader to their own scans, with the command to run
        assert linked == [] and "python -m hippo_utils infer-volume" in next_steps, "the last: your own scans"
    sections = {
        "".join(c["source"]).split("\n", 1)[0]: "".join(c["source"]) for c in cells if c["cell_type"] == "markdown"
    }
    assert len(re.findall(r"^\d+\. \*\*", sections.get("## Try this", ""), re.M)) >= 2, "two or more exercises"
    reading = sections.get("## Further reading", "")
    assert len(re.findall(r"\(https://doi\.org/|\(https://pmc\.", reading)) >= 2, "citations with links"


def test_install_cell_pins_this_release_of_the_named_repository():
    from hippo_utils import __version__

    cell = install_cell_source()
    assert f'"https://github.com/{REPOSITORY}"' in cell and f'ref = "v{__version__}"' in cell
    assert "HIPPO_REPO_URL" in cell and "[notebooks]" not in cell  # never upgrades Colab's widgets or Lab
    compile(cell, "install cell", "exec")


def test_readme_quick_start_is_two_commands():
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Quick start.*?```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert block, "README needs a Quick start code block"
    commands = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
    assert commands == ["make demo", "make test"]
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_no_data_or_models_tracked():
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    bad = [
        f
        for f in tracked
        if re.search(r"\.(nii|nii\.gz|img|hdr|keras|h5|bak)$", f)
        or (f.startswith("data/") and not re.search(r"(README\.md|\.py)$", f))
    ]
    assert not bad


# Import names that differ from their distribution's name.
IMPORT_TO_DIST = {"PIL": "pillow", "yaml": "pyyaml", "IPython": "ipython"}
# Imported only inside functions that a notebook or a test reaches, never by the CLI.
OPTIONAL_IMPORTS = {"ipywidgets": "notebooks", "IPython": "notebooks", "kagglehub": "kaggle"}


def test_every_third_party_import_of_the_package_is_declared():
    import ast
    import sys

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    extras = {extra: {_name(r) for r in reqs} for extra, reqs in project["optional-dependencies"].items()}
    stdlib = set(sys.stdlib_module_names)
    for path in sorted((REPO / "hippo_utils").rglob("*.py")):  # every sub-package
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top in stdlib or top == "hippo_utils" or top == "__future__":
                    continue
                dist = IMPORT_TO_DIST.get(top, top).lower().replace("_", "-")
                if top in OPTIONAL_IMPORTS:
                    assert dist in extras[OPTIONAL_IMPORTS[top]], f"{path.name}: {top} not in [{OPTIONAL_IMPORTS[top]}]"
                else:
                    assert dist in declared, f"{path.name} imports {top}, which pyproject.toml does not declare"


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_code_is_lint_clean_and_formatted(command):
    """``ruff check`` and ``ruff format --check`` over the whole repository (notebooks too), with
    the ruff that pyproject.toml pins in the test extra, as pre-commit runs them."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "ruff", *command, "."], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, f"ruff {' '.join(command)}: run `ruff {command[0]} .` to fix\n{done.stdout[-3000:]}"


def test_licence_and_citation_files():
    assert "Apache License" in (REPO / "LICENSE").read_text() and "Version 2.0" in (REPO / "LICENSE").read_text()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    citation = (REPO / "CITATION.cff").read_text()
    assert citation.startswith("cff-version:")
    for needle in ("Jafari-Khouzani", "10.1007/s12021-010-9096-4", "Antonelli", "10.1038/s41467-022-30695-9"):
        assert needle in citation


def test_readme_gallery_images_exist_and_are_small():
    text = (REPO / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    local = [i for i in images if not re.match(r"^[a-z]+:", i)]
    assert local, "the README shows no figure of its own"
    assert text.lstrip().startswith("#") and "![" in text.split("\n## ", 1)[0], "the README opens with a figure"
    for image in local:
        assert (REPO / image).is_file(), f"README names {image}, which does not exist"
    figures = list((REPO / "docs" / "figures").glob("*"))
    assert sum(p.stat().st_size for p in figures) < 1_000_000, "docs/figures/ must stay under 1 MB"


# The modules a notebook may import from, besides the package root's public API.
NOTEBOOK_MODULES = {"hippo_utils", "hippo_utils.notebook", "hippo_utils.core.backend", "hippo_utils.model.flexunet"}
# What would mean a cell reads the package's own files (PNG masks, JSON records, CSV tables,
# preview names) instead of asking the package. (Printing a file to show it is fine.)
FILE_PARSING = ("Image.open", "json.load", "csv.", "state.json", "Epoch_", "np.eye(", ".glob(", "iterdir(")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_use_the_public_api(path):
    import ast

    import hippo_utils

    cells = json.loads(path.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"][1:]  # after the install cell
    for source in code:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hippo_utils"):
                assert node.module in NOTEBOOK_MODULES, f"{path.name} imports {node.module}: use the package root"
                if node.module == "hippo_utils":
                    for alias in node.names:
                        assert alias.name in hippo_utils.__all__, alias.name
        leaked = [word for word in FILE_PARSING if word in source]
        assert not leaked, f"{path.name}: a cell reads the package's files itself ({leaked}):\n{source}"
