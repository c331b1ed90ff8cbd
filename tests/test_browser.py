"""The built book in a real browser (Debian's Chromium, headless, offline).

What the strict build cannot see: that every equation is typeset by the MathJax the site
serves itself, that no page asks another host for anything, that the scripts run without
errors, that images load, that the table of contents opens on a phone and that no page is
wider than a phone's screen. Skipped, with the fix, where no Chromium is installed.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from tools import browser, course, site_assets

pytestmark = pytest.mark.book

_why = browser.missing_browser()
needs_browser = pytest.mark.skipif(_why is not None, reason=f"no browser test: {_why}")

# A typeset formula exactly as wide as its 120 px line, and the comma after it.
_FORMULA_AND_COMMA = ("<p style='width: 120px'>so <span class='math'><mjx-container style='display: inline-block;"
                      " width: 120px'>x</mjx-container></span>, and</p>")
# A 1x1 PNG for the synthetic pages.
_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
                        "AAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def synthetic_site(tmp_path_factory) -> Path:
    """Two pages: one a reader would be happy with, one with every fault the checks look for.
    Both hold a formula as wide as its line with a comma after it (a stand-in for MathJax's
    output); the good page has the course's script and stylesheet, which keep the comma there."""
    site = tmp_path_factory.mktemp("site")
    (site / "dot.png").write_bytes(_PNG)
    for name in ("course.js", "course.css"):
        shutil.copy(site_assets.STATIC / name, site / name)
    (site / "good.html").write_text(
        "<!doctype html><html><head><meta name='viewport' content='width=device-width'>"
        "<link rel='stylesheet' href='course.css'><script defer src='course.js'></script></head>"
        "<body><main><p>Plain text, and code: <code>\\frac{a}{b}</code></p>"
        "<img src='dot.png' alt='a single black dot on a white square'>" + _FORMULA_AND_COMMA +
        "<pre>x = '\\\\alpha'</pre></main></body></html>", encoding="utf-8")
    (site / "bad.html").write_text(
        "<!doctype html><html><head><meta name='viewport' content='width=device-width'></head>"
        "<body><main><p>The state <span class='math'>\\(\\mathbf{h}_t\\)</span> is raw.</p>" + _FORMULA_AND_COMMA +
        "<img src='https://example.org/remote.png' alt='remote'><img src='missing.png' alt='missing'>"
        "<div class='cell_output'><img src='dot.png' alt='../_images/0a1b2c.png'></div>"
        "<div style='width: 600px'>too wide for a phone</div>"
        "<img src='dot.png' alt='a dot kept 600 px high while its width shrinks'"
        " style='width: 600px; height: 600px; max-width: 100%'>"
        "<button class='search-button-field'>Search</button><button class='search-button-field'>Search</button>"
        "<i class='fa-solid fa-bars'></i>"
        "<script>console.error('broken script')</script></main></body></html>", encoding="utf-8")
    return site


def test_the_pages_to_visit_leave_out_redirects_and_assets(tmp_path):
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=a.html" />\n')
    (tmp_path / "a.html").write_text("<p>a page</p>")
    for folder in ("_static", "mathjax"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.html").write_text("<p>an asset</p>")
    assert browser.html_pages(tmp_path) == [tmp_path / "a.html"]


def test_only_the_served_site_counts_as_local():
    assert browser.is_local("http://127.0.0.1:8000/notebooks/03_lstm.html")
    assert browser.is_local("http://localhost:8000/_static/course.js")
    assert browser.is_local("data:image/png;base64,AAAA") and browser.is_local("blob:http://127.0.0.1/x")
    for url in ("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js", "http://127.0.0.2/x",
                "https://127.0.0.1.example.org/x"):
        assert not browser.is_local(url), url


@needs_browser
def test_the_checks_pass_a_clean_page(synthetic_site):
    with browser.serve(synthetic_site) as base, browser.chromium() as chromium:
        for width in (browser.DESKTOP, browser.PHONE):
            visit = browser.visit(chromium, base + "good.html", width)
            assert visit.problems() == []
            assert visit.facts["images"] == 1


@needs_browser
def test_the_checks_find_every_fault_they_look_for(synthetic_site):
    with browser.serve(synthetic_site) as base, browser.chromium() as chromium:
        problems = " | ".join(browser.visit(chromium, base + "bad.html", browser.PHONE).problems())
    for expected in ("request to another host: https://example.org/remote.png",
                     "failed request:", "missing.png", "console: broken script",
                     "raw TeX in the rendered text", "equation not typeset",
                     "image did not load", "px wide at a 390 px viewport",
                     "image without a real alt text: ../_images/0a1b2c.png", "figure without a numbered caption",
                     "image out of proportion: dot.png drawn", "2 search fields in sight",
                     "punctuation on a new line after a formula: 'x,'", "icon not drawn: fa-solid fa-bars"):
        assert expected in problems, f"{expected!r} not reported in: {problems}"


@needs_browser
def test_page_weight_counts_what_the_browser_loaded(synthetic_site):
    good = browser.page_weight(synthetic_site, "good.html")
    assert good["by_kind"]["html"] == len((synthetic_site / "good.html").read_bytes())
    assert good["by_kind"]["images"] == len(_PNG)
    assert good["bytes"] == sum(good["by_kind"].values()) and good["refused_external"] == []
    bad = browser.page_weight(synthetic_site, "bad.html")
    assert bad["refused_external"] == ["https://example.org/remote.png"]


@pytest.fixture(scope="session")
def visits(html) -> dict[str, browser.Visit]:
    if _why is not None:
        pytest.skip(f"no browser test: {_why}")
    return browser.visit_all(html)


def test_the_site_serves_its_own_mathjax(html):
    page = (html / "notebooks" / "03_lstm.html").read_text(encoding="utf-8")
    assert 'src="../_static/../mathjax/tex-chtml.js"' in page
    assert (html / "mathjax" / "tex-chtml.js").exists()
    assert (html / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    assert "cdn.jsdelivr" not in page and "unpkg.com" not in page


def test_icons_come_from_a_stylesheet_not_the_themes_script(html):
    """Font Awesome's 1.49 MB script is on no page; its class stylesheet is on every page."""
    for path in browser.html_pages(html):
        page = path.read_text(encoding="utf-8")
        assert "fontawesome.js" not in page, path
        assert "fontawesome/fontawesome.min.css" in page, path
    assert (html / "fontawesome" / "fontawesome.min.css").exists()
    assert not list((html / "_static" / "scripts").glob("fontawesome.js*"))


@needs_browser
def test_every_page_is_visited_at_both_widths(visits):
    chapters = {nb.relative_to(course.ROOT).with_suffix(".html").as_posix() for nb in course.notebook_paths()}
    seen = {key.split(" @ ")[0] for key in visits}
    assert chapters <= seen
    searches = [v for key, v in visits.items() if "search.html?q=" in key]
    assert len(searches) == 2 * len(browser.SEARCHES)
    assert all(v.facts["search_results"] >= 2 for v in searches), "each search finds pages, so snippets are checked"
    assert {"book/intro.html", "book/bibliography.html", "search.html"} <= seen
    assert len(visits) == 2 * len(seen)


@needs_browser
def test_every_page_works_offline_on_desktop_and_phone(visits):
    """No request leaves 127.0.0.1, maths typeset, no console errors, images load, the
    table of contents opens on a phone (and collapses on a desktop), nothing wider than 390 px."""
    bad = {key: v.problems() for key, v in visits.items() if v.problems()}
    assert not bad, "\n".join(f"{k}:\n  " + "\n  ".join(p) for k, p in bad.items())


@needs_browser
def test_every_chapter_shows_typeset_equations_and_its_figures(visits):
    for nb in course.notebook_paths():
        rel = nb.relative_to(course.ROOT).with_suffix(".html").as_posix()
        facts = visits[f"{rel} @ {browser.DESKTOP}"].facts
        assert facts["equations"] >= 5, rel
        assert facts["images"] >= 1, rel


@needs_browser
def test_the_book_prints_to_a_pdf_with_no_code_cut_and_every_equation_typeset(tmp_path_factory, jupyter_book):
    """`make pdf`: the one-page build, printed by the same browser."""
    out = tmp_path_factory.mktemp("pdf")
    cmd = [jupyter_book, "build", str(course.ROOT), "--builder", "singlehtml", "--path-output", str(out),
           "-W", "-n", "--keep-going", "--all"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=course.ROOT)
    assert proc.returncode == 0 and "WARNING" not in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-4000:]
    printout = browser.print_book(out / "_build" / "singlehtml", out / "book.pdf")
    assert printout.pdf.read_bytes()[:5] == b"%PDF-"
    assert printout.pages >= 100, "every chapter is in the PDF"
    assert printout.code_cut == [], "code lines wider than the printed page"
    assert printout.untypeset == []
