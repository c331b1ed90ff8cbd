"""The book builds with warnings as errors, and the built pages carry what readers need."""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from tools import course

pytestmark = pytest.mark.book
ROOT = course.ROOT


def _page(html: Path, rel: str) -> str:
    path = html / rel
    assert path.exists(), f"missing page {rel}"
    return path.read_text(encoding="utf-8")


def test_index_opens_the_introduction(html):
    assert 'url=book/intro.html' in _page(html, "index.html")


PAGES = ["book/intro.html", "book/how_to_use.html", "book/notation.html", "book/instructors.html",
         "book/bibliography.html"]


@pytest.mark.parametrize("rel", PAGES)
def test_prose_pages_are_built(html, rel):
    assert "<h1" in _page(html, rel)


@pytest.mark.parametrize("nb", course.notebook_paths(), ids=lambda p: p.name)
def test_notebook_page_has_launch_buttons_to_its_own_ipynb(html, nb):
    rel = nb.relative_to(ROOT).as_posix()
    page = _page(html, rel.replace(".ipynb", ".html"))
    url, branch = course.repository()
    owner_repo = url.removeprefix("https://github.com/")
    hrefs = re.findall(r'href="([^"]+)"', page)
    colab = [h for h in hrefs if "colab.research.google.com" in h]
    binder = [h for h in hrefs if "mybinder.org" in h]
    assert colab == [f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/{rel}"]
    assert len(binder) == 1
    assert binder[0].startswith(f"https://mybinder.org/v2/gh/{owner_repo}/{branch}?")
    assert binder[0].endswith(rel)


@pytest.mark.parametrize("nb", course.notebook_paths(), ids=lambda p: p.name)
def test_notebook_page_shows_outputs_equations_and_exercises(html, nb):
    page = _page(html, nb.relative_to(ROOT).with_suffix(".html").as_posix())
    notebook = nbformat.read(nb, as_version=4)
    assert "cell_output" in page, "stored outputs are rendered"
    figures = sum("image/png" in out.get("data", {}) for c in notebook.cells if c.cell_type == "code"
                  for out in c.outputs)
    assert len(set(re.findall(r'<img alt="[^"]*" src="(\.\./_images/[0-9a-f]+\.png)"', page))) == figures
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    labels = re.findall(r"\$\$[^$]+\$\$[ \t]*\(([^)\s]+)\)", markdown)
    assert labels
    for label in labels:
        assert f'id="equation-{label}"' in page, f"equation {label} is not numbered on the page"
    exercises = page.count('class="exercise admonition"')
    assert exercises >= 3, "at least three exercises"
    assert page.count('class="solution dropdown admonition"') == exercises, "every solution is collapsed"


@pytest.mark.parametrize("nb", course.notebook_paths(), ids=lambda p: p.name)
def test_equations_are_numbered_by_chapter(html, nb):
    """(0.1) in the prelude as (1.1), (5.2) ... elsewhere: tools/prelude_numbering.py numbers
    chapter 0, which sits outside the numbered parts of the table of contents."""
    chapter = int(nb.name[:2])
    page = _page(html, nb.relative_to(ROOT).with_suffix(".html").as_posix())
    numbers = re.findall(r'class="eqno">\(([^)]*)\)', page)
    assert numbers, "the chapter has numbered equations"
    wrong = [n for n in numbers if not re.fullmatch(rf"{chapter}\.\d+", n)]
    assert not wrong, f"equation numbers not of the form ({chapter}.k): {wrong}"


def test_bibliography_lists_the_seed_references(html):
    page = _page(html, "book/bibliography.html")
    for name in ["Hochreiter", "Gers", "Cho", "Greff", "Jozefowicz", "Olah", "Vaswani", "Gu"]:
        assert name in page


_LABEL = re.compile(r"(?:[A-Z][a-z]{2}|(?:[a-z]?[A-Z]){2,4}\+?)\d{2}[a-z]?")


def test_the_label_pattern_tells_clean_labels_from_garbled_ones():
    for ok in ["HS97", "Ble90", "CvMG+14", "AKB16", "GGR22", "VSP+17", "Kar15"]:
        assert _LABEL.fullmatch(ok), ok
    for bad in ["AKovciskyB16", "BPoppelS+24", "GGRe22", "KoutnikGGS14"]:  # TeX accents in the .bib
        assert not _LABEL.fullmatch(bad), bad


def test_bibliography_labels_are_clean(html):
    page = _page(html, "book/bibliography.html")
    labels = re.findall(r'class="label"><span class="fn-bracket">\[</span>([^<]*)<', page)
    assert len(labels) >= 30, "the bibliography's labels were found"
    garbled = [label for label in labels if not _LABEL.fullmatch(label)]
    assert not garbled, f"labels built from TeX-escaped names (write the accents in UTF-8): {garbled}"


def test_citations_link_to_the_bibliography(html):
    page = _page(html, "book/intro.html")
    assert "bibliography.html#id" in page or 'href="bibliography.html' in page


# ----------------------------------------------------------------------------- TeX a reader sees
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_RAW = [
    (re.compile(r"\\[A-Za-z]{2,}"), "a TeX command"),
    (re.compile(r"\$[^$\s][^$]*\$"), "a $...$ span"),
    (re.compile(r"\{(?:eq|cite|ref|doc|numref|term|math)\}`"), "a MyST role"),
]


class _ProseText(HTMLParser):
    """The text of a page outside math, code, scripts and styles: what a reader reads as prose."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.skip = 0  # depth inside an element whose text is not prose
        self.chunks: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _VOID:
            return
        classes = (dict(attrs).get("class") or "").split()
        if self.skip or tag in {"script", "style", "pre", "code", "kbd", "samp", "textarea"} or "math" in classes:
            self.skip += 1

    def handle_endtag(self, tag):
        if self.skip and tag not in _VOID:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.chunks.append(data)


def tex_outside_math(page: str) -> list[str]:
    """Snippets of raw TeX or unrendered MyST roles in a page's prose (not in math or code)."""
    parser = _ProseText()
    parser.feed(page)
    text = re.sub(r"\s+", " ", " ".join(parser.chunks))
    return [f"{what}: ...{text[max(0, m.start() - 40): m.end() + 40]}..."
            for pattern, what in _RAW for m in pattern.finditer(text)]


def test_the_tex_detector_finds_what_markdown_broke():
    ok = ('<p>With <span class="math notranslate nohighlight">\\(\\mathbf{h}_t + b\\)</span> and '
          '<code>$HOME</code></p><pre>x = "\\n"</pre><script>var a = "\\alpha";</script>')
    assert tex_outside_math(ok) == []
    # what a "+ " at the start of a continuation line inside $...$ does: Markdown makes a list
    broken = '<p>the state $\\mathbf{h}_t = \\mathbf{a}_t</p><ul><li><p>\\mathbf{b}_t$ {eq}`eq-x`</p></li></ul>'
    found = " ".join(tex_outside_math(broken))
    assert "TeX command" in found and "MyST role" in found


def test_no_page_shows_raw_tex_or_myst_roles(html):
    pages = [p for p in html.rglob("*.html") if "_static" not in p.parts]
    assert len(pages) >= 12
    problems = {p.relative_to(html).as_posix(): tex_outside_math(p.read_text(encoding="utf-8")) for p in pages}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, f"raw TeX or MyST roles outside math, by page: {problems}"


# ----------------------------------------------------------------------------- student edition
@pytest.fixture(scope="session")
def student_html(tmp_path_factory) -> Path:
    """The student edition (`make student-book`), built strictly into a temporary folder."""
    out = tmp_path_factory.mktemp("student")
    return course.build_student_book(["-W", "-n", "--keep-going", "--all", "-q"], out=out)


def _solution_phrases() -> dict[str, list[str]]:
    """Plain-prose lines of every exercise solution in the chapters: text a reader would see."""
    phrases = {}
    for nb_path in course.notebook_paths():
        nb = nbformat.read(nb_path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                continue
            for label, body in re.findall(r"````\{solution\}\s*([^\n]*)\n(.*?)\n````", cell.source, flags=re.S):
                lines = [ln.strip() for ln in body.splitlines()]
                plain = [ln for ln in lines if len(ln) >= 25 and not re.search(r"[$`{}\\*|_<>\[\]#=()]", ln)]
                phrases[f"{nb_path.stem}: {label}"] = plain
    return phrases


def _visible_text(path: Path) -> str:
    text = re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8", errors="replace"))
    text = html_lib.unescape(text).replace("\u2019", "'").replace("\u2018", "'")
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2013", "-").replace("\u2014", "--")
    return re.sub(r"\s+", " ", text)


def test_student_edition_holds_no_solution_text_anywhere(html, student_html):
    phrases = _solution_phrases()
    assert len(phrases) >= 25, "the chapters' solutions were found"
    full = " ".join(_visible_text(p) for p in html.rglob("*.html"))
    with_text = {k: v for k, v in phrases.items() if v}
    assert len(with_text) >= 20
    # positive control: the phrases are findable in the ordinary build
    missing = [k for k, v in with_text.items() if not any(ph in full for ph in v)]
    assert not missing, f"phrase extraction does not match the rendered book: {missing[:3]}"
    files = [p for p in student_html.rglob("*") if p.is_file() and p.suffix in {".html", ".js", ".txt", ".ipynb",
                                                                                 ".json", ".md"}]
    assert any(p.name == "searchindex.js" for p in files)
    student = {p: _visible_text(p) for p in files}
    for key, lines in with_text.items():
        for phrase in lines:
            hits = [p.relative_to(student_html).as_posix() for p, t in student.items() if phrase in t]
            assert not hits, f"solution text of {key!r} is in the student edition: {hits[:3]}"
    assert not (student_html / "_sources").exists(), "no copies of the source notebooks"


def test_student_edition_keeps_the_exercises(student_html):
    for nb in course.notebook_paths():
        page = _page(student_html, nb.relative_to(ROOT).with_suffix(".html").as_posix())
        notebook_text = nb.read_text(encoding="utf-8")
        exercises = notebook_text.count("{exercise}")
        assert page.count('class="exercise admonition"') == exercises
        assert "solution dropdown admonition" not in page
