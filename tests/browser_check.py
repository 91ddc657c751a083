"""The built book in a real browser: Debian's chromium, driven by selenium through Debian's chromedriver.

    python tests/browser_check.py SITE_VERSION_DIR [--shot NAME=PAGE[#CSS]] [--shots DIR]

serves the folder (a version of the book: site/latest/ or site/versions/<id>/) on 127.0.0.1, opens every page in
headless chromium with a 1400 px window, and fails (exit 1, one line per problem) where
- a page logs a console error (a script that fails, a resource that does not load);
- an image does not load;
- an internal link does not resolve: its file is missing, or its #anchor is on no element of that page;
- a table is wider than the page's content at 1400 px (each tab of a tab set shown in turn), or scrolls sideways;
- a figure (an image in a notebook's output) does not open at full size when clicked (a link to the image itself),
  is shown narrower than the width its fonts were set for (its text shrunk), or has no provenance line under it in
  its cell; a table in a notebook's output has none either.
`--shot table_1=table_1.html` saves a full-page screenshot at 1400 px into --shots; `NAME=PAGE#CSS` one element.

Nothing is downloaded: the browser and its driver are the system's (`apt-get install chromium chromium-driver`,
which .ci/run does); selenium is told their paths, so Selenium Manager never looks for others.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import os
import re
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path

WIDTH, HEIGHT = 1400, 1000
CHROMIUM = os.environ.get("ZEROFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ZEROFLOW_CHROMEDRIVER", "/usr/bin/chromedriver")
BROWSER_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}")

# Run in the page: what the checks need, measured by the browser itself.
MEASURE = r"""
const content = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
const right = content.getBoundingClientRect().right;
const problems = [];
function visibleTables() { return [...document.querySelectorAll('table')].filter(t => t.offsetParent !== null); }
function overflowing(table, where) {
  const box = table.getBoundingClientRect();
  if (box.right > right + 1) problems.push(`table ${where}is ${Math.round(box.width)} px wide and ends ` +
                                           `${Math.round(box.right - right)} px past the content's edge`);
  for (let node = table.parentElement; node && node !== content; node = node.parentElement) {
    if (node.scrollWidth > node.clientWidth + 1 && getComputedStyle(node).overflowX !== 'visible') {
      problems.push(`table ${where}scrolls sideways in its ${node.tagName.toLowerCase()}.${node.className} ` +
                    `(${node.scrollWidth} px in ${node.clientWidth} px)`);
      break;
    }
  }
}
const seen = new Set();
const tabs = [...document.querySelectorAll('.sd-tab-set > input')];
for (const input of tabs) {
  input.click();
  const label = document.querySelector(`label[for="${input.id}"]`);
  for (const table of visibleTables()) { seen.add(table); overflowing(table, `in tab "${label ? label.innerText.trim() : input.id}" `); }
}
for (const table of visibleTables()) if (!seen.has(table)) { seen.add(table); overflowing(table, ''); }
const images = [...document.images].map(img => ({src: img.getAttribute('src'), ok: img.complete && img.naturalWidth > 0}));
const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
const figures = [], outputs = [];
for (const img of document.querySelectorAll('.cell_output img, .output img')) {
  const cell = img.closest('.cell') || img.closest('.cell_output');
  const link = img.closest('a');
  const line = cell ? [...cell.querySelectorAll('.zeroflow-provenance')].find(
      p => img.compareDocumentPosition(p) & Node.DOCUMENT_POSITION_FOLLOWING) : null;
  // the width its fonts were set for (report.Sources.figure) against the width the page gives it
  // (myst-nb writes the width a notebook gave the image as its style; a hand-made page may use the attribute)
  const declared = parseFloat(img.style.width) || parseFloat(img.getAttribute('width')) || img.naturalWidth;
  figures.push({src: img.getAttribute('src'), clickable: !!(link && link.href && link.href.split('#')[0] === img.src),
                provenance: !!line, declared: declared, shown: img.getBoundingClientRect().width});
}
for (const table of document.querySelectorAll('.cell_output table, .output table')) {
  const cell = table.closest('.cell') || table.closest('.cell_output');
  const line = cell ? [...cell.querySelectorAll('.zeroflow-provenance')].find(
      p => table.compareDocumentPosition(p) & Node.DOCUMENT_POSITION_FOLLOWING) : null;
  outputs.push({head: table.innerText.trim().split('\n')[0].slice(0, 60), provenance: !!line});
}
return {problems, images, links, figures, outputs, tables: seen.size, provenance_lines:
        document.querySelectorAll('.zeroflow-provenance').length};
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a request the browser dropped (a page left mid-load); what the page missed, its console says


def serve(folder: Path):
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def browser(profile_dir: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            sys.exit(f"browser check: {path} is missing; install Debian's chromium and chromium-driver "
                     "(apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


def anchors(folder: Path, page: str, cache: dict) -> set[str] | None:
    """The ids and names of a page's elements (None: no such page)."""
    if page not in cache:
        path = folder / page
        cache[page] = (set(re.findall(r'\s(?:id|name)="([^"]+)"', path.read_text(errors="replace")))
                       if path.is_file() else None)
    return cache[page]


def check_link(folder: Path, base: str, href: str, cache: dict) -> str | None:
    """What is wrong with an internal link, or None."""
    parsed = urllib.parse.urlsplit(href)
    path = urllib.parse.unquote(parsed.path[len(urllib.parse.urlsplit(base).path):])
    if path == "" or path.endswith("/"):
        path += "index.html"
    target = folder / path
    if not target.is_file():
        return f"links to {path}, which is missing"
    if parsed.fragment and target.suffix == ".html":
        ids = anchors(folder, path, cache)
        if urllib.parse.unquote(parsed.fragment) not in ids:
            return f"links to {path}#{parsed.fragment}, an anchor that page does not have"
    return None


def check_page(driver, folder: Path, base: str, page: str, cache: dict) -> tuple[list[str], dict]:
    driver.get(base + page)
    # the log holds what was logged since the last read: this page's load (the last page's ended with a read)
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    found = driver.execute_script(MEASURE)
    errors += [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    problems = [f"console error: {message}" for message in errors]
    problems += found["problems"]
    problems += [f"broken image: {image['src']}" for image in found["images"] if not image["ok"]]
    internal = sorted({link for link in found["links"] if link.startswith(base)})
    problems += [f"internal link {link[len(base):]}: {why}" for link in internal
                 if (why := check_link(folder, base, link, cache))]
    problems += [f"figure {figure['src']} does not open at full size when clicked" for figure in found["figures"]
                 if not figure["clickable"]]
    problems += [f"figure {figure['src']} has no provenance line under it" for figure in found["figures"]
                 if not figure["provenance"]]
    # a figure shrunk to fit shrinks its text below the sizes figures.py set for the page (5 %: rounding, borders)
    problems += [f"figure {figure['src']} is shown at {figure['shown']:.0f} px of the {figure['declared']:.0f} px its "
                 "fonts were set for: its text is shrunk" for figure in found["figures"]
                 if figure["shown"] < 0.95 * figure["declared"]]
    problems += [f"table '{table['head']}' has no provenance line under it" for table in found["outputs"]
                 if not table["provenance"]]
    counts = {"images": len(found["images"]), "links": len(internal), "tables": found["tables"],
              "figures": len(found["figures"]), "provenance": found["provenance_lines"]}
    return problems, counts


def screenshot(driver, base: str, spec: str, out: Path) -> Path:
    """NAME=PAGE: the whole page at 1400 px; NAME=PAGE#CSS: the first element the selector finds."""
    from selenium.webdriver.common.by import By

    name, _, target = spec.partition("=")
    page, _, selector = target.partition("#")
    driver.get(base + page)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    if selector:
        element = driver.find_element(By.CSS_SELECTOR, selector)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.screenshot(str(path))
        return path
    height = driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="a built version of the book (site/latest, site/versions/<id>)")
    parser.add_argument("--shot", action="append", default=[], help="NAME=PAGE or NAME=PAGE#CSS: a screenshot")
    parser.add_argument("--shots", type=Path, default=Path("build/screens"), help="where screenshots go")
    args = parser.parse_args(argv)
    folder = args.site.resolve()
    pages = sorted(str(path.relative_to(folder)) for path in folder.rglob("*.html")
                   if not path.relative_to(folder).parts[0].startswith(("_", "data")))
    if not pages:
        print(f"browser check: no pages under {folder}")
        return 1
    server, base = serve(folder)
    failed, totals, cache = 0, {}, {}
    with tempfile.TemporaryDirectory(prefix="zeroflow-chromium-") as profile:
        driver = browser(profile)
        try:
            for page in pages:
                problems, counts = check_page(driver, folder, base, page, cache)
                totals = {key: totals.get(key, 0) + value for key, value in counts.items()}
                summary = ", ".join(f"{value} {key}" for key, value in counts.items())
                if problems:
                    failed += 1
                    print(f"FAIL {page} ({summary})")
                    for problem in problems:
                        print(f"     {problem}")
                else:
                    print(f"ok   {page} ({summary})")
            for spec in args.shot:
                print(f"screenshot {screenshot(driver, base, spec, args.shots)}")
        finally:
            driver.quit()
            server.shutdown()
    summary = ", ".join(f"{value} {key}" for key, value in totals.items())
    print(f"browser check ({Path(CHROMIUM).name}, {WIDTH} px): {len(pages)} pages, {summary}: "
          + (f"{failed} page{'s' if failed != 1 else ''} failed" if failed else "every page passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
