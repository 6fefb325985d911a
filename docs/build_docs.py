"""Build the rendered tutorial: execute the six notebooks with one config, then make a
static site of them with MkDocs (Material theme, mkdocs-jupyter), offline.

    python docs/build_docs.py                              # demo config -> site/
    python docs/build_docs.py --config configs/ci.config --site /tmp/site

The site has a home page made from README.md, the notebooks in order with their real
outputs, notebooks 03-06 as they ran on real MRI (docs/real/, made by docs/render_real.py),
and benchmarks/RESULTS.md. A page has no kernel, so a widget output keeps only its
static picture (the live panel's final state, the viewer's first view); links to files of
the repository that are not pages point at the repository on GitHub.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")


@functools.cache
def notebooks() -> tuple[Path, ...]:
    return tuple(sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))


def staged(repo_path: str) -> str | None:
    """Where a file of the repository lies among the site's sources, if it is there."""
    pages = {"README.md": "index.md", "benchmarks/RESULTS.md": "results.md"}
    pages |= {f"notebooks/{nb.name}": f"notebooks/{nb.name}" for nb in notebooks()}
    pages |= {f"docs/real/{nb.name}": f"real/{nb.name}" for nb in real_pages()}
    if repo_path.startswith("docs/figures/"):
        return repo_path.removeprefix("docs/")
    return pages.get(repo_path)


@functools.cache
def real_pages() -> tuple[Path, ...]:
    """Notebooks executed on real MRI by docs/render_real.py (committed with their outputs)."""
    return tuple(sorted((DOCS / "real").glob("[0-9][0-9]_*.ipynb")))


def site_target(target: str, source: str, at: str | None = None) -> str:
    """Where a relative link in the repository file ``source`` points on the site: the
    staged page or figure, else the file in the repository on GitHub. ``at``: where the page
    is served when not at ``source``'s own place (a real-data rendering of a notebook)."""
    from hippo_utils.notebook import BRANCH, REPOSITORY_URL

    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
        return target  # absolute (https:, mailto:, data:) or in-page
    path, _, anchor = target.partition("#")
    repo_path = os.path.normpath(os.path.join(os.path.dirname(source), path))
    anchor = f"#{anchor}" if anchor else ""
    page = staged(repo_path)
    if page is None:
        return f"{REPOSITORY_URL}/blob/{BRANCH}/{repo_path}{anchor}"
    here = at or staged(source)
    if source.endswith(".ipynb"):  # mkdocs-jupyter leaves a notebook's links alone: give the page URLs
        return os.path.relpath(url_of(page), url_of(here)) + "/" * page.endswith((".md", ".ipynb")) + anchor
    return os.path.relpath(page, os.path.dirname(here or "") or ".") + anchor


def url_of(staged_path: str) -> str:
    """The folder a staged file is served from: ``notebooks/01_x.ipynb`` -> ``notebooks/01_x``."""
    if staged_path == "index.md":
        return "."
    if staged_path.endswith((".md", ".ipynb")):
        return staged_path.rsplit(".", 1)[0]
    return staged_path


def rewrite_links(text: str, source: str, at: str | None = None) -> str:
    """``source`` is the page's path in the repository (README.md, notebooks/01_….ipynb);
    ``at``, where it is served when elsewhere (real/03_….ipynb)."""

    def sub(m: re.Match[str]) -> str:
        return m.group(1) + site_target(m.group(2), source, at) + m.group(3)

    return LINK.sub(sub, text)


def execute(path: Path, config: Path) -> tuple[object, float]:
    """The notebook at ``path``, executed with ``HIPPO_CONFIG=config`` in the notebooks folder."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ["HIPPO_CONFIG"] = str(config)  # the kernel inherits this environment
    t0 = time.perf_counter()
    NotebookClient(
        nb,
        timeout=1800,
        kernel_name="python3",
        store_widget_state=False,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    return nb, time.perf_counter() - t0


def static_outputs(nb) -> None:
    """Keep what a page without a kernel can show: a widget output keeps its PNG, if it has
    one, and is dropped otherwise (a progress bar, say)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            continue
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                if "image/png" not in data:
                    continue
                del data[WIDGET_VIEW]
            kept.append(out)
        cell.outputs = kept


def stage(pages: Path, config: Path | None, figures: Path = DOCS / "figures") -> dict[str, float]:
    """Write the site's sources into ``pages``; execute the notebooks unless ``config`` is None."""
    import nbformat

    if pages.exists():
        _check_ours(pages, "docs-pages", "--work")
        shutil.rmtree(pages)
    (pages / "notebooks").mkdir(parents=True)
    (pages / "index.md").write_text(rewrite_links((ROOT / "README.md").read_text(), "README.md"))
    (pages / "results.md").write_text(
        rewrite_links((ROOT / "benchmarks" / "RESULTS.md").read_text(), "benchmarks/RESULTS.md")
    )
    if figures.is_dir():
        shutil.copytree(figures, pages / "figures")
    times = {}
    for path in notebooks():
        if config is None:
            nb = nbformat.read(path, as_version=4)
        else:
            print(f"executing {path.name} with {config.name} …", flush=True)
            nb, times[path.name] = execute(path, config)
            print(f"  {times[path.name]:.0f} s", flush=True)
        static_outputs(nb)
        _rewrite_markdown(nb, f"notebooks/{path.name}")
        nbformat.write(nb, pages / "notebooks" / path.name)
    for path in real_pages():  # as they ran on real data: never executed here
        nb = nbformat.read(path, as_version=4)
        _rewrite_markdown(nb, f"notebooks/{path.name}", at=f"real/{path.name}")
        (pages / "real").mkdir(exist_ok=True)
        nbformat.write(nb, pages / "real" / path.name)
    return times


def _rewrite_markdown(nb, source: str, at: str | None = None) -> None:
    """The links of the notebook's markdown cells as the site serves them (:func:`rewrite_links`)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_links(cell.source, source, at)


def _check_ours(folder: Path, kind: str, option: str) -> None:
    """Refuse to empty ``folder`` unless an earlier build made it and it holds nothing else
    (MkDocs empties its site folder whatever is in it)."""
    from hippo_utils.core.ownership import protected_reason, why_not_replaceable

    reason = protected_reason(folder, [("the repository", ROOT)]) or why_not_replaceable(folder, kind)
    if reason:
        raise SystemExit(f"{option} {folder}: {reason}; this build would empty it. Choose another {option}")


def build(pages: Path, site: Path) -> None:
    """MkDocs over ``pages`` into ``site``, with docs/mkdocs.yml; warnings (a broken link
    or anchor) fail the build."""
    config = pages.parent / "mkdocs.yml"
    config.write_text((DOCS / "mkdocs.yml").read_text() + f"\ndocs_dir: {pages.name}\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--clean",
            "-q",
            "-f",
            str(config),
            "-d",
            str(site.resolve()),
        ],
        capture_output=True,
        text=True,
        cwd=pages.parent,
    )  # mkdocs-jupyter keeps its .cache/ in the working folder
    if done.returncode:
        sys.exit(f"mkdocs build failed:\n{done.stdout}{done.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config",
        type=Path,
        default=ROOT / "configs" / "demo.config",
        help="the config the notebooks run with (default: configs/demo.config)",
    )
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="where the site goes (default: site/)")
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "build" / "docs",
        help="staging folder for the executed pages (default: build/docs/)",
    )
    parser.add_argument(
        "--figures",
        type=Path,
        default=DOCS / "figures",
        help="the gallery the home page shows (default: docs/figures/, from make figures)",
    )
    parser.add_argument("--no-execute", action="store_true", help="render the notebooks without running them")
    args = parser.parse_args(argv)
    if not args.config.is_file():
        parser.error(f"--config {args.config}: no such file")
    t0 = time.perf_counter()
    from hippo_utils.core.ownership import mark_tree

    _check_ours(args.site, "docs-site", "--site")  # before the notebooks run for minutes
    times = stage(args.work / "pages", None if args.no_execute else args.config.resolve(), args.figures)
    mark_tree(args.work / "pages", "docs-pages")
    build(args.work / "pages", args.site)
    mark_tree(args.site, "docs-site")
    total = time.perf_counter() - t0
    if times:
        print(f"notebooks: {sum(times.values()):.0f} s ({', '.join(f'{k[:2]} {v:.0f} s' for k, v in times.items())})")
    print(f"site in {args.site} ({total:.0f} s in all); open {args.site / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
