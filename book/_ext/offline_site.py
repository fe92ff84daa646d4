"""Sphinx extension: keep the built site free of remote loads and duplicate scripts.

Jupyter Book always registers sphinx-thebe. With thebe switched off (``launch_buttons.thebe: false``)
its inline configuration still names a CDN URL, and it is added twice, which makes the browser
report "Identifier 'THEBE_JS_URL' has already been declared" on every page. The book has no live
kernel on the website (explorers are precomputed), so that inline script is dropped from each
page. The local sphinx-thebe.js stays: it loads nothing unless thebe is activated.
"""


def _drop_thebe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    keep = []
    for js in scripts:
        body = getattr(js, "attributes", {}).get("body", "") or ""
        if "THEBE_JS_URL" in body:
            continue
        keep.append(js)
    scripts[:] = keep


def setup(app):
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
