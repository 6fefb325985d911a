"""The notebooks as readers meet them, on a fresh copy of the CI config in a temporary folder:

1. the six notebooks run from the last to the first (each must make what the earlier ones
   would have: outputs go to idempotent places);
2. ``docs/make_figures.py`` draws the README's gallery from that run;
3. ``docs/build_docs.py`` runs the notebooks again, in order, and builds the site with that
   gallery, as ``make docs``;
4. the site is checked on disk (every page, every notebook image, no broken internal link
   or anchor) and in headless Chromium (every image of the site loads).
"""

from __future__ import annotations

import functools
import http.server
import io
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

from helpers import REPO, free_port

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ARTIFACTS = REPO / "test-artifacts"


def _execute(path: Path, config: Path, monkeypatch) -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("HIPPO_CONFIG", str(config))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{str(exc)[-3000:]}")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A workspace whose notebooks ran out of order, then the site and figures made from it."""
    tmp = tmp_path_factory.mktemp("docs")
    (tmp / "configs").mkdir()
    config = Path(shutil.copy(REPO / "configs" / "ci.config", tmp / "configs" / "ci.config"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        for path in reversed(NOTEBOOKS):
            _execute(path, config, monkeypatch)
    for script, args in (
        ("make_figures.py", ["--out", str(tmp / "figures")]),
        (
            "build_docs.py",
            ["--site", str(tmp / "site"), "--work", str(tmp / "work"), "--figures", str(tmp / "figures")],
        ),
    ):
        done = subprocess.run(
            [sys.executable, str(REPO / "docs" / script), "--config", str(config), *args],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"{script}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return tmp


def test_notebooks_run_out_of_order_leave_one_complete_run(built):
    runs = built / "runs" / "ci"
    assert (runs / "models" / "state.json").is_file()
    assert len(list((runs / "models").glob("last.e*.keras"))) == 1
    assert (built / "data" / "derived" / "ci" / "dataset.json").is_file()
    assert not list(built.rglob(".*.tmp-*"))  # nothing half-written left behind


def _executed(built: Path, notebook: Path):
    import nbformat

    return nbformat.read(built / "work" / "pages" / "notebooks" / notebook.name, as_version=4)


def _page(built: Path, notebook: Path) -> Path:
    return built / "site" / "notebooks" / notebook.stem / "index.html"


def test_every_notebook_page_shows_every_figure_its_notebook_draws(built):
    for notebook in NOTEBOOKS:
        nb = _executed(built, notebook)
        pictures = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
        html = _page(built, notebook).read_text()
        shown = re.findall(r'<img[^>]+src="data:image/png;base64,', html)
        assert pictures and len(shown) >= len(pictures), f"{notebook.name}: {len(shown)} of {len(pictures)} shown"
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
        text = "".join(o.get("text", "") for o in outputs)
        assert "absl::InitializeLog" not in text and "cudart_stub" not in text, f"{notebook.name}: TF start-up lines"
    assert (built / "site" / "index.html").is_file() and (built / "site" / "results" / "index.html").is_file()


@pytest.mark.parametrize("notebook, marker", [("03_training", "LiveTrainingPanel()"), ("06_slice_viewer", "viewer\n")])
def test_widgets_leave_a_picture_on_the_page(built, notebook, marker):
    nb = _executed(built, REPO / "notebooks" / f"{notebook}.ipynb")
    cell = next(c for c in nb.cells if c.cell_type == "code" and marker in c.source + "\n")
    assert any("image/png" in o.get("data", {}) for o in cell.outputs), f"{notebook}: no picture for the widget"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if a.get(key) and not (tag == "script" and key == "src" and not a[key].strip()):
                self.refs.append(a[key])


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(errors="replace"))
    return parser


def test_no_internal_link_or_image_is_broken(built):
    site = built / "site"
    # 404.html is served for any missing path, so it links from the site's root (site_url)
    pages = {p: _parse(p) for p in site.rglob("*.html") if p.name != "404.html"}
    broken = []
    for page, links in pages.items():
        for ref in links.refs:
            url = urlparse(ref)
            if url.scheme or url.netloc or ref.startswith(("data:", "javascript:", "mailto:")):
                continue  # external, or embedded
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {ref}")
            elif url.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(url.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)}: {ref} (no such anchor)")
    assert not broken, "\n".join(broken[:30])


@pytest.fixture
def served(built):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(built / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_site_in_a_browser(browser, served, built):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    failed = []  # answers of the site other than 2xx/3xx (requests cut short by navigation are no failure)
    page.on(
        "response",
        lambda r: failed.append(f"{r.status} {r.url}") if r.url.startswith(served) and r.status >= 400 else None,
    )
    for path in ["", *(f"notebooks/{nb.stem}/" for nb in NOTEBOOKS), "results/"]:
        page.goto(urljoin(served, path), wait_until="load")
        images = page.evaluate("""() => [...document.querySelectorAll('article img')].map(i => ({
            src: i.currentSrc.slice(0, 60), ok: i.complete && i.naturalWidth > 0}))""")
        local = [i for i in images if i["src"].startswith(("data:", served))]  # the offline badge is external
        assert all(i["ok"] for i in local), f"{path or 'home'}: broken images {[i for i in local if not i['ok']]}"
        if path.startswith("notebooks/"):
            assert local, f"{path}: no image shown"
    page.goto(urljoin(served, "notebooks/03_training/"), wait_until="load")
    page.screenshot(path=str(ARTIFACTS / "docs_03_training.png"), full_page=False)
    page.locator("article img[src^='data:image/png']").nth(0).scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "docs_03_training_panel.png"))
    page.goto(urljoin(served, "notebooks/06_slice_viewer/"), wait_until="load")
    page.locator("article img[src^='data:image/png']").nth(0).scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "docs_06_slice_viewer.png"))
    assert not failed, f"requests to the site that failed: {failed[:10]}"


def test_gallery_script_writes_every_figure_small(built):
    from PIL import Image

    sys.path.insert(0, str(REPO / "docs"))
    try:
        from make_figures import FIGURES
    finally:
        sys.path.remove(str(REPO / "docs"))
    written = {p.name: p for p in (built / "figures").glob("*.png")}
    assert set(written) == set(FIGURES)
    for path in written.values():
        image = Image.open(io.BytesIO(path.read_bytes()))
        assert image.width >= 300 and image.height >= 150, path.name
    assert sum(p.stat().st_size for p in written.values()) < 1_000_000


def test_the_real_mri_pages_name_no_local_folder_and_say_how_to_read_them():
    """docs/real/ (docs/render_real.py): this machine's folders are written as a reader's would
    be, and each page opens with what it is and what in the demo's prose does not hold there."""
    import nbformat

    sys.path.insert(0, str(REPO / "docs"))
    from render_real import NOTEBOOKS, scrub

    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "x",
                outputs=[
                    nbformat.v4.new_output(
                        "stream", name="stdout", text="model: /home/me/repo/build/real/runs/models\n"
                    ),
                    nbformat.v4.new_output(
                        "execute_result", data={"text/plain": "'/data/real/msd-task04-hippocampus'"}
                    ),
                ],
            )
        ]
    )
    scrub(nb, {"/home/me/repo": ".", "/data/real": "$HIPPO_REAL_DATA"})
    outputs = nb.cells[0].outputs
    assert outputs[0].text == "model: ./build/real/runs/models\n"
    assert outputs[1].data["text/plain"] == "'$HIPPO_REAL_DATA/msd-task04-hippocampus'"
    pages = sorted((REPO / "docs" / "real").glob("*.ipynb"))
    assert [p.stem for p in pages] == list(NOTEBOOKS)
    for page in pages:
        text = page.read_text()
        assert "/work/" not in text and str(REPO) not in text, page.name
        header = nbformat.read(page, as_version=4).cells[1].source
        assert header.startswith("> **Real MRI.**") and "**anterior** and **posterior**" in header, page.name
