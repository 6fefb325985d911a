"""Repository hygiene: dependencies in step, notebooks well-formed and output-free."""

import json
import re

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

import pytest

from hippo_utils.notebook import REPOSITORY, colab_badge_url

from helpers import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CONDA_TO_PYPI = {"python": None, "pip": None}


def _name(req: str) -> str:
    return re.split(r"[<>=!\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_pyproject_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    wanted |= {_name(r) for extra in ("notebooks", "test") for r in project["optional-dependencies"][extra]}
    text = (REPO / "environment.yml").read_text().split("dependencies:", 1)[1]
    conda = {_name(m) for m in re.findall(r"^  - (?!pip:)(\S+)$", text, re.M)}
    pip = {_name(m) for m in re.findall(r"^      - (?!-e )(\S+)$", text, re.M)}
    listed = {CONDA_TO_PYPI.get(n, n) for n in conda | pip} - {None}
    assert listed == wanted


def test_notebooks_exist_in_order():
    names = [p.name for p in NOTEBOOKS]
    assert names and names[0].startswith("01_")
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, len(names) + 1)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opening_badge_guard_and_no_outputs(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    first = "".join(cells[0]["source"])
    assert first.startswith("# "), "H1 title first"
    assert "You will learn" in first and "Prerequisites" in first
    badge = colab_badge_url(f"notebooks/{path.name}")
    assert f"]({badge})" in first, f"the Colab badge must point to {badge}"
    guard = "".join(cells[2]["source"])
    assert 'find_spec("hippo_utils") is None' in guard
    assert f"https://github.com/{REPOSITORY}" in guard
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        "notebooks in git carry no outputs (run nbstripout)"
    last = "".join(cells[-1]["source"])
    assert "## Summary" in last and "## Next steps" in last or "## Summary" in "".join(cells[-2]["source"])


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
    bad = [f for f in tracked if re.search(r"\.(nii|nii\.gz|img|hdr|keras|h5|bak)$", f)
           or (f.startswith("data/") and not re.search(r"(README\.md|\.py)$", f))]
    assert not bad
