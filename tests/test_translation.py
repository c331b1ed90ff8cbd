"""The Hindi edition (tools/translation.py): the catalogs keep every message's maths, code and
roles; the documents declared finished are wholly translated; a change to the English makes its
translation stale (fuzzy), and a stale translation is never shown; the language switch links each
page to the same page in the other language. The strict Hindi build and its pages are checked in
the book lane (marker ``book``), the browser tests over them in tests/test_browser.py."""

from __future__ import annotations

import html as html_lib
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from tools import browser, course, translation

LOCALES = translation.LOCALES / "hi" / "LC_MESSAGES"


def _write_catalog(path: Path, messages: dict[str, str], *, locale: str | None = "hi") -> Path:
    catalog = Catalog(locale=locale)
    for msgid, msgstr in messages.items():
        catalog.add(msgid, msgstr)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, catalog, width=0)
    return path


def _read(path: Path):
    with path.open("rb") as f:
        return read_po(f)


def _translate(po: Path, translations: dict[str, str], *, fuzzy: tuple[str, ...] = ()) -> None:
    """Write ``translations`` (msgid -> msgstr) into ``po``, and flag the ``fuzzy`` msgids."""
    catalog = _read(po)
    for msgid, msgstr in translations.items():
        catalog[msgid].string = msgstr
    for msgid in fuzzy:
        catalog[msgid].flags.add("fuzzy")
    with po.open("wb") as f:
        write_po(f, catalog, width=0)


# ----------------------------------------------------------------------------- what a translation keeps
def test_protected_spans_are_maths_code_roles_and_link_targets():
    text = ("The state $\\mathbf{h}_t$ of {eq}`eq-rnn` is `h`; see [chapter 3](../notebooks/03_lstm) "
            "and $$a = b$$ (eq-x), ``x[0]``.")
    assert translation.protected_spans(text) == sorted(
        ["$\\mathbf{h}_t$", "{eq}`eq-rnn`", "`h`", "](../notebooks/03_lstm)", "$$a = b$$", "``x[0]``"])


def test_check_catalog_reports_a_translation_that_drops_or_changes_maths_code_or_a_role(tmp_path):
    po = _write_catalog(tmp_path / "doc.po", {
        "The gate $\\sigma(x)$ is `gate`.": "gate $\\sigma(x)$ है, यानी `gate`।",  # kept, reordered
        "See {eq}`eq-gate`.": "देखिए {eq}`eq-gates`।",  # a changed label
        "Read $x_t$.": "पढ़िए x_t।",  # maths lost
        "Untranslated $y$.": "",  # not a translation: coverage's business
        "\n\\begin{aligned} a &= b \\end{aligned}\n": "\n\\begin{aligned} a &= c \\end{aligned}\n",
        "\n\\begin{equation} x \\end{equation}\n": "\n\\begin{equation} x \\end{equation}\n",
    })
    problems = translation.check_catalog(po)
    assert len(problems) == 3 and any("equation" in p and "aligned" in p for p in problems)
    assert any("eq-gates" in p for p in problems) and any("$x_t$" in p for p in problems)


def test_every_hindi_catalog_keeps_its_maths_code_roles_and_links():
    problems = [p for po in sorted(LOCALES.rglob("*.po")) for p in translation.check_catalog(po)]
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------- coverage
def test_coverage_counts_translated_fuzzy_and_empty_messages(tmp_path):
    po = _write_catalog(tmp_path / "doc.po", {"one": "एक", "two": "दो", "three": "", "four": "चार"})
    _translate(po, {}, fuzzy=("four",))
    row = translation.catalog_coverage(po, "doc")
    assert (row.total, row.translated, row.fuzzy, row.untranslated) == (4, 2, 1, 1)
    assert not row.complete


def test_every_document_of_the_toc_has_a_catalog():
    missing = [doc for doc in translation.toc_documents() if not (LOCALES / f"{doc}.po").exists()]
    assert not missing, f"run `python -m tools.translation update`: no catalog for {missing}"


def test_the_documents_declared_finished_are_wholly_translated():
    """``COMPLETE`` lists the documents whose Hindi is finished and read back; each of them has
    every message translated and none stale. The issue is done when it lists the whole TOC."""
    toc = translation.toc_documents()
    assert set(translation.COMPLETE["hi"]) <= set(toc)
    rows = {row.document: row for row in translation.coverage("hi")}
    incomplete = {doc: rows[doc] for doc in translation.COMPLETE["hi"] if not rows[doc].complete}
    assert not incomplete, "\n" + translation.coverage_table(list(incomplete.values()))


# ----------------------------------------------------------------------------- stale translations
def test_a_changed_english_message_keeps_its_translation_only_as_fuzzy(tmp_path):
    templates, locales = tmp_path / "gettext", tmp_path / "locales"
    _write_catalog(templates / "book" / "page.pot", {
        "The forget gate keeps the cell state.": "", "A heading": "", "Gone soon.": ""}, locale=None)
    translation.update_catalogs(templates, "hi", locales)
    po = locales / "hi" / "LC_MESSAGES" / "book" / "page.po"
    _translate(po, {"The forget gate keeps the cell state.": "forget gate cell state को बनाए रखता है।",
                    "A heading": "एक शीर्षक", "Gone soon.": "जल्द ही हटेगा।"})
    assert translation.catalog_coverage(po, "page").complete

    # the English changes: one message edited, one removed, one added
    _write_catalog(templates / "book" / "page.pot", {
        "The forget gate keeps the cell state for many steps.": "", "A heading": "", "A new message.": ""},
        locale=None)
    translation.update_catalogs(templates, "hi", locales)
    catalog = _read(po)
    edited = catalog["The forget gate keeps the cell state for many steps."]
    assert edited.fuzzy and edited.string == "forget gate cell state को बनाए रखता है।"  # stale, kept for the translator
    assert catalog["A heading"].string == "एक शीर्षक" and not catalog["A heading"].fuzzy
    assert catalog["A new message."].string == ""
    assert "Gone soon." not in catalog and not catalog.obsolete
    row = translation.catalog_coverage(po, "page")
    assert (row.translated, row.fuzzy, row.untranslated) == (1, 1, 1) and not row.complete


def test_sphinx_shows_the_english_of_a_stale_message_not_the_old_hindi(tmp_path):
    """A tiny Sphinx project through the whole workflow: extract, translate, build; then change
    one English sentence, update, build again."""
    src, locales = tmp_path / "src", tmp_path / "locales"
    src.mkdir()
    (src / "conf.py").write_text("language = 'hi'\nlocale_dirs = ['../locales']\ngettext_compact = False\n"
                                 "gettext_location = False\n", encoding="utf-8")

    def write_page(second: str) -> None:
        (src / "index.rst").write_text(f"Title\n=====\n\nThe gate opens.\n\n{second}\n", encoding="utf-8")

    def sphinx(builder: str, out: Path) -> None:
        proc = subprocess.run([sys.executable, "-m", "sphinx", "-b", builder, "-q", "-E", "-W", str(src), str(out)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    write_page("The cell state flows on.")
    sphinx("gettext", tmp_path / "pot")
    translation.update_catalogs(tmp_path / "pot", "hi", locales)
    po = locales / "hi" / "LC_MESSAGES" / "index.po"
    _translate(po, {"Title": "शीर्षक", "The gate opens.": "गेट खुलता है।",
                    "The cell state flows on.": "cell state बहती रहती है।"})
    sphinx("html", tmp_path / "html")
    page = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    assert "गेट खुलता है।" in page and "cell state बहती रहती है।" in page

    write_page("The cell state flows on, step after step.")
    sphinx("gettext", tmp_path / "pot")
    translation.update_catalogs(tmp_path / "pot", "hi", locales)
    assert _read(po)["The cell state flows on, step after step."].fuzzy
    sphinx("html", tmp_path / "html2")
    page = (tmp_path / "html2" / "index.html").read_text(encoding="utf-8")
    assert "गेट खुलता है।" in page  # unchanged English: its translation stays
    assert "The cell state flows on, step after step." in page  # stale: the English, not the old Hindi
    assert "cell state बहती रहती है।" not in page


# ----------------------------------------------------------------------------- the language switch
def _app(language: str, student: bool = False):
    return SimpleNamespace(config=_Config(language, student))


class _Config:
    """The two settings the switch reads, as Sphinx's Config answers them."""

    def __init__(self, language, student):
        self.language, self.hide_solutions = language, student

    def __contains__(self, key):
        return key == "hide_solutions"


@pytest.mark.parametrize("student", [False, True])
def test_the_language_switch_links_the_same_page_both_ways(student):
    en = translation.other_language_links(_app("en", student), "notebooks/03_lstm")
    hi = translation.other_language_links(_app("hi", student), "notebooks/03_lstm")
    assert [link["lang"] for link in en] == ["hi"] and [link["lang"] for link in hi] == ["en"]
    # follow each link from where the page lives (paths relative to _build/) and come back
    roots = {code: (lang.student_root if student else lang.root) for code, lang in translation.LANGUAGES.items()}
    page_en = Path("/b") / roots["en"] / "notebooks/03_lstm.html"
    target = (page_en.parent / en[0]["url"]).resolve()
    assert target == (Path("/b") / roots["hi"] / "notebooks/03_lstm.html").resolve()
    back = (target.parent / hi[0]["url"]).resolve()
    assert back == page_en.resolve()
    root_link = translation.other_language_links(_app("en", student), "index")[0]["url"]
    assert (Path("/b") / roots["en"] / root_link).resolve() == (Path("/b") / roots["hi"] / "index.html").resolve()


# ----------------------------------------------------------------------------- the built Hindi book
def _page(site: Path, rel: str) -> str:
    path = site / rel
    assert path.exists(), f"missing page {rel}"
    return path.read_text(encoding="utf-8")


def _hindi_catalog(doc: str):
    return _read(LOCALES / f"{doc}.po")


_DEVANAGARI = re.compile(r"[\u0900-\u097F]")


@pytest.mark.book_hi
def test_every_page_of_the_toc_is_in_the_hindi_book_marked_as_hindi(html_hi):
    for doc in translation.toc_documents():
        page = _page(html_hi, f"{doc}.html")
        assert '<html lang="hi"' in page, doc
    assert translation.LANGUAGES["hi"].title in _page(html_hi, "book/intro.html")


@pytest.mark.book_hi
def test_finished_documents_show_their_hindi_headings_captions_alt_texts_and_exercise_titles(html_hi):
    for doc in translation.COMPLETE["hi"]:
        page = html_lib.unescape(_page(html_hi, f"{doc}.html"))
        catalog = _hindi_catalog(doc)
        title = next(m for m in catalog if m.id)  # a document's first message is its title
        assert title.string in page, doc
        hindi = {m.string for m in catalog if m.id}
        alts = re.findall(r'<img alt="([^"]*)" src="\.\./_images/', page)  # the figures of the outputs
        assert all(alt in hindi for alt in alts), f"{doc}: an alt text not from the catalog: {alts}"
        assert not alts or any(_DEVANAGARI.search(alt) for alt in alts), doc
        titles = re.findall(r'class="admonition-title"><span class="caption-number">[^<]*</span>\s*\((.*?)\)</p>', page)
        assert all(title in hindi for title in titles), f"{doc}: an exercise title not from the catalog: {titles}"


@pytest.mark.book_hi
def test_each_hindi_page_links_to_its_english_page_and_back(html, html_hi):
    """The switch in the header: from _build/html/<page> to _build/hi/html/<page> and back."""
    switch = r'<a class="btn btn-sm course-language" href="([^"]+)" hreflang="{}"'
    for doc in translation.toc_documents():
        depth = doc.count("/")
        en = re.findall(switch.format("hi"), _page(html, f"{doc}.html"))
        hi = re.findall(switch.format("en"), _page(html_hi, f"{doc}.html"))
        assert en == ["../" * depth + f"../hi/html/{doc}.html"], doc
        assert hi == ["../" * depth + f"../../html/{doc}.html"], doc


@pytest.mark.book_hi
def test_the_themes_words_and_the_tocs_parts_are_in_hindi(html_hi):
    """Not only the documents: the table of contents' part captions (inserted by
    sphinx-external-toc after Sphinx translates), the themes' buttons and the search field."""
    page = html_lib.unescape(_page(html_hi, "notebooks/03_lstm.html"))
    for english, hindi in (("Getting started", "शुरुआत"), ("Back matter", "परिशिष्ट"), ("Contents", "विषय-सूची"),
                           ("Download this page", "यह पृष्ठ डाउनलोड करें"),
                           ("Search this book...", translation.LANGUAGES["hi"].search_bar_text)):
        assert hindi in page and english not in page, english


@pytest.mark.book_hi
def test_the_hindi_book_serves_its_devanagari_font(html_hi):
    css = (html_hi / translation.FONT_SITE_DIR / translation.FONT_CSS).read_text(encoding="utf-8")
    for name in translation.FONT_FILES:
        assert (html_hi / translation.FONT_SITE_DIR / name).stat().st_size > 10_000
        assert name in css
    assert "https://" not in css and "fonts.googleapis" not in css
    assert "_static/../fonts/devanagari.css" in _page(html_hi, "notebooks/03_lstm.html")


@pytest.mark.book_hi
def test_hindi_notebook_pages_launch_the_course_notebooks(html_hi):
    for nb in sorted((translation.ROOT / "notebooks").glob("*.ipynb")):
        rel = nb.relative_to(translation.ROOT).as_posix()
        page = _page(html_hi, rel.replace(".ipynb", ".html"))
        assert f"blob/main/{rel}" in page and "mybinder.org" in page, rel  # the same notebooks as the English book


def _hindi_solution_phrases() -> dict[str, list[str]]:
    """Plain runs of the Hindi of every message inside an exercise solution of a finished chapter."""
    out = {}
    for doc in translation.COMPLETE["hi"]:
        source = translation.ROOT / f"{doc}.ipynb"
        if not source.exists():
            continue
        cells = [c.source for c in nbformat.read(source, as_version=4).cells if c.cell_type == "markdown"]
        english = " ".join(body for cell in cells
                           for body in re.findall(r"````\{solution\}[^\n]*\n(.*?)\n````", cell, flags=re.S))
        english = re.sub(r"\s+", " ", english)
        phrases = []
        for message in _hindi_catalog(doc):
            if message.id and len(message.id) > 40 and message.id[:40] in english and message.string:
                plain = [run.strip() for run in re.split(r"[$`{}\\*|_<>\[\]#=()]", message.string)]
                phrases += [run for run in plain if len(run) >= 25]
        out[doc] = phrases
    return out


@pytest.mark.book_hi
def test_the_hindi_student_edition_holds_no_solution_text(html_hi, student_html_hi):
    phrases = {doc: p for doc, p in _hindi_solution_phrases().items() if p}
    assert len(phrases) >= 3, "the finished chapters' Hindi solutions were found"
    full = " ".join(html_lib.unescape(p.read_text(encoding="utf-8")) for p in html_hi.rglob("*.html"))
    assert all(any(ph in full for ph in lines) for lines in phrases.values()), "positive control"
    files = [p for p in student_html_hi.rglob("*") if p.is_file() and p.suffix in {".html", ".js", ".txt", ".ipynb"}]
    student = " ".join(html_lib.unescape(p.read_text(encoding="utf-8", errors="replace")) for p in files)
    for doc, lines in phrases.items():
        hits = [ph for ph in lines if ph in student]
        assert not hits, f"{doc}: solution text in the Hindi student edition: {hits[:2]}"
    assert not (student_html_hi / "_sources").exists()
    assert 'class="exercise admonition"' in _page(student_html_hi, "notebooks/03_lstm.html")


@pytest.mark.book_hi
def test_the_catalogs_hold_exactly_the_messages_of_the_english_sources(tmp_path):
    """Extract the English messages now and compare with locales/hi: an English edit that no
    `make translations` has merged would otherwise show up as English in the Hindi book while
    the coverage report still said 100%."""
    templates = translation.extract(out=tmp_path / "gettext")
    stale = {}
    for pot in sorted(templates.rglob("*.pot")):
        doc = pot.relative_to(templates).with_suffix("").as_posix()
        english = {m.id for m in _read(pot) if m.id}
        po = LOCALES / f"{doc}.po"
        hindi = {m.id for m in _read(po) if m.id} if po.exists() else set()
        if english != hindi:
            stale[doc] = (sorted(english - hindi)[:3], sorted(hindi - english)[:3])
    assert not stale, f"run `make translations`: catalogs out of step with the English {stale}"


def test_empty_messages_of_the_search_page_are_filled_or_dropped(tmp_path):
    """Sphinx's Hindi catalog for the search page has empty messages, which a page shows as blanks."""
    static = tmp_path / "_static"
    static.mkdir()
    key = "Search finished, found ${resultCount} page(s) matching the search query."
    (static / "translations.js").write_text(
        'Documentation.addTranslations({"locale": "hi", "messages": {"Search": "खोजें", '
        f'"{key}": "", "Index": ""' + '}, "plural_expr": "(n != 1)"});', encoding="utf-8")
    assert translation.fill_js_translations(tmp_path, "hi") == 2
    text = (static / "translations.js").read_text(encoding="utf-8")
    body = json.loads(text[text.index("(") + 1 : text.rindex(")")])
    assert body["messages"] == {"Search": "खोजें", key: translation.JS_MESSAGES["hi"][key]}
    assert "${resultCount}" in body["messages"][key]


# ----------------------------------------------------------------------------- in a real browser
_why = browser.missing_browser()
needs_browser = pytest.mark.skipif(_why is not None, reason=f"no browser test: {_why}")


@pytest.fixture(scope="session")
def visits_hi(html_hi) -> dict[str, browser.Visit]:
    if _why is not None:
        pytest.skip(f"no browser test: {_why}")
    return browser.visit_all(html_hi)


@pytest.mark.book_hi
@needs_browser
def test_every_hindi_page_works_offline_on_desktop_and_phone(visits_hi):
    """The same checks as for the English book, over every page of the Hindi one."""
    chapters = {nb.relative_to(course.ROOT).with_suffix(".html").as_posix() for nb in course.notebook_paths()}
    assert chapters <= {key.split(" @ ")[0] for key in visits_hi}
    bad = {key: v.problems() for key, v in visits_hi.items() if v.problems()}
    assert not bad, "\n".join(f"{k}:\n  " + "\n  ".join(p) for k, p in bad.items())


@pytest.mark.book_hi
@needs_browser
@pytest.mark.parametrize("width", [browser.DESKTOP, browser.PHONE])
def test_the_language_switch_works_both_ways_and_hindi_is_set_in_the_served_font(html, html_hi, tmp_path, width):
    """Both books served side by side as _build/ holds them: click the switch on an English
    chapter, land on its Hindi page, whose Devanagari is drawn with the site's own font, and
    click back."""
    site = tmp_path / "site"
    (site / "hi").mkdir(parents=True)
    (site / "html").symlink_to(html, target_is_directory=True)
    (site / "hi" / "html").symlink_to(html_hi, target_is_directory=True)
    with browser.serve(site) as base, browser.chromium() as chrome:
        refused = []
        context = browser.offline_context(chrome, width, refused=refused)
        page = context.new_page()
        page.goto(base + "html/notebooks/03_lstm.html", wait_until="load")
        assert page.evaluate("document.documentElement.lang") == "en"
        with page.expect_navigation():
            page.click("a.course-language[hreflang=hi]")
        assert page.url == base + "hi/html/notebooks/03_lstm.html"
        assert page.evaluate("document.documentElement.lang") == "hi"
        page.wait_for_load_state("networkidle")
        loaded = page.evaluate("""async () => { await document.fonts.ready;
            return [...document.fonts].filter(f => f.family.replace(/"/g, '') === 'Noto Sans Devanagari'
                                                   && f.status === 'loaded').length; }""")
        assert loaded >= 1, "the Devanagari text is drawn with the served Noto Sans Devanagari"
        with page.expect_navigation():
            page.click("a.course-language[hreflang=en]")
        assert page.url == base + "html/notebooks/03_lstm.html"
        context.close()
    assert not refused
