"""A Sphinx extension: the built book is self-contained and readable on every screen.

Registered in ``_config.yml`` (``sphinx.local_extensions``). It does three things:

* **MathJax from the site, not a CDN.** ``mathjax_path`` points at a copy of MathJax 3 that
  the build installs with npm (``tools/web/package.json``, locked by ``package-lock.json``)
  and copies to ``<html>/mathjax/`` when the build ends, so equations render offline. It is
  not put in a ``_static`` folder, where Jupyter Book would add every ``.js`` file to every
  page. Without npm the book still builds and says that its maths needs the network.
* **Icons from a stylesheet, not a 1.5 MB script.** pydata-sphinx-theme draws its Font Awesome
  icons with Font Awesome's JavaScript, which every page loads (1.49 MB, a third of a chapter's
  weight) and runs over the whole page. The theme already declares Font Awesome's web fonts, so
  Font Awesome's own class stylesheet (the same version, 6.5.2, from npm, copied to
  ``<html>/fontawesome/``) draws the same icons with them, and the script is left off every page.
* **The reader's stylesheet and script** (``tools/web/static``): the sidebar toggles that the
  theme leaves unbound, code and outputs that fit the column, figures that scale.
* **No Thebe.** Jupyter Book always loads sphinx-thebe, which writes its inline settings
  twice on each page (a console error) and points at a CDN. The course launches notebooks on
  Colab and Binder instead, so those assets are left off every page.

It changes no page content.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

WEB = Path(__file__).resolve().parent / "web"
STATIC = WEB / "static"
MATHJAX = WEB / "node_modules" / "mathjax" / "es5"
FONTAWESOME_CSS = WEB / "node_modules" / "@fortawesome" / "fontawesome-free" / "css" / "fontawesome.min.css"
# The Hindi book's font (tools/translation.py copies it); installed with the rest.
DEVANAGARI_FONT = WEB / "node_modules" / "@fontsource" / "noto-sans-devanagari" / "files"
FA_SITE_DIR = "fontawesome"
# The theme's script tag for Font Awesome's JavaScript (webpack-macros.html), left off every page.
FA_SCRIPT = re.compile(r'\s*<script defer src="[^"]*_static/scripts/fontawesome\.js[^"]*"></script>')
# Where MathJax lands in the built site, and the page-relative path Sphinx writes for it
# (``mathjax_path`` is relative to ``_static/``; the site root is one level up).
SITE_DIR = "mathjax"
ENTRY = "tex-chtml.js"
# What the reader's browser may ask for: the TeX-to-HTML component, the TeX extensions it
# loads on demand, the HTML fonts, the menu, and the accessibility tools the menu offers.
PARTS = (ENTRY, "input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y", "sre")
CSS = ("course.css",)
JS = ("course.js",)


def install_web_assets(web: Path = WEB) -> bool:
    """Install the locked MathJax, Font Awesome and the Devanagari font with ``npm ci`` if any is
    missing; False when npm is absent."""
    parts = (MATHJAX / ENTRY, FONTAWESOME_CSS, DEVANAGARI_FONT)
    if all((web / part.relative_to(WEB)).exists() for part in parts):
        return True
    npm = shutil.which("npm")
    if npm is None:
        return False
    logger.info("site_assets: installing MathJax and Font Awesome's stylesheet with npm ci (tools/web)")
    proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=web,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExtensionError(f"site_assets: `npm ci` in {web} failed:\n{proc.stdout}{proc.stderr}")
    return True


def _config_inited(app: Sphinx, config) -> None:
    if install_web_assets():
        config.mathjax_path = f"../{SITE_DIR}/{ENTRY}"
        app.site_assets_local = True
    else:
        app.site_assets_local = False
        logger.info("site_assets: npm not found, so the book loads MathJax from its CDN (its "
                    "equations need the network) and keeps the theme's 1.5 MB icon script; install "
                    "Node.js (npm) for a self-contained, lighter book")
    config.html_static_path = [*config.html_static_path, str(STATIC)]


def without_fontawesome_script(html: str) -> str:
    """A rendered page without the theme's Font Awesome script tag."""
    return FA_SCRIPT.sub("", html)


def _builder_inited(app: Sphinx) -> None:
    for name in CSS:
        app.add_css_file(name)
    for name in JS:
        app.add_js_file(name, defer="defer")
    if app.site_assets_local and app.builder.format == "html":
        # Paths are relative to _static/; the stylesheet sits at the site root, beside mathjax/.
        app.add_css_file(f"../{FA_SITE_DIR}/{FONTAWESOME_CSS.name}")
        render = app.builder.templates.render
        app.builder.templates.render = lambda template, context: without_fontawesome_script(
            render(template, context))


def copy_mathjax(outdir: Path, source: Path = MATHJAX) -> Path:
    """Copy the parts of MathJax a reader's browser can ask for into ``outdir/mathjax``."""
    target = outdir / SITE_DIR
    if target.exists():
        shutil.rmtree(target)
    for part in PARTS:
        src = source / part
        if not src.exists():
            raise ExtensionError(f"site_assets: {src} is missing: reinstall with `npm ci` in {WEB}")
        dst = target / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)
    return target


def copy_fontawesome_css(outdir: Path, source: Path = FONTAWESOME_CSS) -> Path:
    """Copy Font Awesome's class stylesheet to ``outdir/fontawesome`` and drop the theme's copy
    of the script no page loads any more (1.49 MB, and 1.67 MB of source map)."""
    target = outdir / FA_SITE_DIR / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    for unused in (outdir / "_static" / "scripts").glob("fontawesome.js*"):
        unused.unlink()
    return target


def _build_finished(app: Sphinx, exception) -> None:
    if exception is None and app.builder.format == "html" and app.site_assets_local:
        copy_mathjax(Path(app.outdir))
        copy_fontawesome_css(Path(app.outdir))


def is_thebe_asset(asset) -> bool:
    """True for the scripts and stylesheet sphinx-thebe adds to a page."""
    name = getattr(asset, "filename", None) or ""
    body = getattr(asset, "attributes", {}).get("body", "")
    return "thebe" in name or "THEBE_JS_URL" in body


def _html_page_context(app: Sphinx, pagename, templatename, context, doctree) -> None:
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [a for a in context[key] if not is_thebe_asset(a)]


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _config_inited)
    app.connect("builder-inited", _builder_inited)
    app.connect("html-page-context", _html_page_context)
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
