"""Each script once per page. Under Sphinx 7, sphinx-thebe (which Jupyter Book 1.x always loads) and
sphinx-togglebutton add their inline scripts a second time while a page is written, and the second
`const THEBE_JS_URL = ...` is a SyntaxError in every page's console (tests/browser_check.py fails on console
errors). This runs after every other handler of the page and keeps the first of each script (same file, same body)."""


def _once(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if scripts:
        seen, unique = set(), []
        for script in scripts:
            # an inline script is added once with the file name None and once with "": the same script
            key = (str(script.filename or ""), script.attributes.get("body"))
            if key not in seen:
                seen.add(key)
                unique.append(script)
        scripts[:] = unique


def setup(app):
    app.connect("html-page-context", _once, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

