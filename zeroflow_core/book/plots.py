"""`dvc plots show` without a network: an HTML template that carries the Vega libraries itself.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so it is blank offline. The
template written here inlines them, bundled by the pinned vl-convert-python package, and keeps DVC's
`{plot_divs}` placeholder (DVC fills it by plain text replacement, so the scripts' braces are safe).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from zeroflow_core.io import write_atomically

PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>ZeroFlow companion: dvc plots</title>
  <script>{bundle}</script>
  <style>body {{ font-family: sans-serif; }} table {{ border-spacing: 15px; }}</style>
</head>
<body>
  <h1>Training loss and accuracy per optimizer (mean over seeds), one chart per method × dataset</h1>
  {{plot_divs}}
</body>
</html>
"""


def offline_template(path: str | Path) -> Path:
    """Write the template (once per vl-convert version: the bundle is about 0.9 MB) and return its path."""
    import vl_convert

    path = Path(path)
    page = PAGE.format(bundle=vl_convert.javascript_bundle())
    if not path.is_file() or path.read_text() != page:
        write_atomically(path, lambda tmp: tmp.write_text(page))
    return path


def show(out: str | Path) -> Path:
    """`dvc plots show` into `out`/ with the offline template; returns the page."""
    out = Path(out)
    template = offline_template(out.parent / "dvc-plots-template.html")
    subprocess.run(["dvc", "plots", "show", "--html-template", str(template), "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return out / "index.html"
