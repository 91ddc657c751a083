"""tests/browser_check.py against hand-made pages in Debian's chromium: a page that reads well passes, and each
thing the check is for fails it (make pipeline-check runs the same check on the tiny grid's book)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import browser_check  # noqa: E402

pytestmark = pytest.mark.skipif(not (Path(browser_check.CHROMIUM).is_file() and Path(browser_check.CHROMEDRIVER)
                                     .is_file()), reason="Debian's chromium and chromium-driver are not installed")

# one pixel, a valid PNG
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2d6d4ad0000000049454e44ae426082")
GOOD_FIGURE = ('<div class="cell"><div class="cell_output"><a href="_images/f.png"><img src="_images/f.png" '
               'width="100" style="max-width: 100%"></a><p class="zeroflow-provenance">data f.csv</p></div></div>')
GOOD_TABLE = ('<div class="cell"><div class="cell_output"><table><tr><td>1</td></tr></table>'
              '<p class="zeroflow-provenance">data t.csv</p></div></div>')


def site(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "site"
    (folder / "_images").mkdir(parents=True)
    (folder / "_images" / "f.png").write_bytes(PNG)
    # an icon of their own: without one the browser asks for /favicon.ico, a 404 in the console
    head = '<html><head><link rel="icon" href="data:,"></head><body>'
    (folder / "other.html").write_text(head + '<main><h1 id="top">other</h1></main></body></html>')
    (folder / "index.html").write_text(head +
                                       f'<main style="width: 800px">{body}<a href="other.html#top">o</a></main>'
                                       '</body></html>')
    return folder


def check(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tests" / "browser_check.py"), str(folder)],
                          capture_output=True, text=True, timeout=120, env={**os.environ})


def test_a_page_that_reads_well_passes(tmp_path):
    done = check(site(tmp_path, GOOD_FIGURE + GOOD_TABLE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every page passed" in done.stdout and "1 figures" in done.stdout


@pytest.mark.parametrize("body, problem", [
    # a figure whose file is not there
    (GOOD_FIGURE.replace("_images/f.png", "_images/missing.png"), "broken image: _images/missing.png"),
    # a table wider than the content (800 px)
    ('<div class="cell"><div class="cell_output"><table style="width: 1200px"><tr><td>1</td></tr></table>'
     '<p class="zeroflow-provenance">data t.csv</p></div></div>', "past the content's edge"),
    # a figure without a provenance line, one that does not open when clicked, a table without one
    (GOOD_FIGURE.replace('<p class="zeroflow-provenance">data f.csv</p>', ""), "has no provenance line"),
    (GOOD_FIGURE.replace('<a href="_images/f.png">', "<span>").replace("</a>", "</span>"), "does not open at full"),
    (GOOD_TABLE.replace('<p class="zeroflow-provenance">data t.csv</p>', ""), "table '1' has no provenance line"),
    # an internal link to a missing page, and to an anchor the page does not have
    ('<a href="gone.html">x</a>', "links to gone.html, which is missing"),
    ('<a href="other.html#nowhere">x</a>', "an anchor that page does not have"),
    # a figure made for 1600 px, squeezed into the 800 px page (max-width, as the book's theme): its text shrunk
    (GOOD_FIGURE.replace('width="100"', 'width="1600"'), "its text is shrunk"),
    # a script that fails
    ("<script>undefinedFunction()</script>", "console error"),
])
def test_each_problem_fails_the_check(tmp_path, body, problem):
    done = check(site(tmp_path, GOOD_FIGURE + body))
    assert done.returncode == 1 and "FAIL index.html" in done.stdout and problem in done.stdout, done.stdout
