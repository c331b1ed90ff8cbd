"""The book in other languages: Sphinx's gettext workflow over the Jupyter Book configuration.

The English pages and notebooks are the only source. Their text is extracted into message
catalogs (one per document), a translator fills in ``locales/<language>/LC_MESSAGES/<doc>.po``,
and Sphinx builds the translated book from the same sources, so code, outputs and maths stay
single-source (only prose, headings, captions and alt texts are messages).

    python -m tools.translation update     # extract the messages and merge them into the .po files
    python -m tools.translation build      # the Hindi book in _build/hi/html (flags go to jupyter-book)
    python -m tools.translation student    # its student edition, in _build/hi-student/html
    python -m tools.translation coverage   # translated / fuzzy / untranslated per document
    python -m tools.translation check      # every translation keeps its message's maths, code and roles

``update`` keeps every translation whose English is unchanged. When the English of a message
changes, the old translation is kept but marked fuzzy (stale); Sphinx does not use a fuzzy
translation, so the page shows the new English until a translator confirms or fixes it, and
``coverage`` (and the test that runs it) reports the document as incomplete. The same layout
works with ``sphinx-intl update -p _build/gettext -l hi -d locales``.

Besides the documents' catalogs, ``locales/hi/LC_MESSAGES`` holds ``sphinx.po`` and
``booktheme.po``: the words of the themes (search, contents, the header's buttons), which the
themes themselves do not translate into Hindi.

This module is also a Sphinx extension (``_config.yml``, ``sphinx.local_extensions``): every
page of every language links to the same page in the other languages (a switch in the header),
and Devanagari text (the Hindi book, and the glossary of both) is set in Noto Sans Devanagari,
served by the site itself (installed from npm with the other web assets), never fetched from
a font service. Its faces cover only the Devanagari block, so Latin text keeps the theme's font.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from docutils import nodes
from sphinx import addnodes
from sphinx.errors import ExtensionError
from sphinx.locale import init as init_locale
from sphinx.transforms import SphinxTransform
from sphinx.util.i18n import docname_to_domain
from sphinx.util.nodes import get_node_line
from sphinx_exercise.nodes import exercise_subtitle

# (tools.course is imported where the command line needs it: Sphinx loads this module as a
# local extension, with tools/ but not the repository root on its path)

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "locales"
BUILD = ROOT / "_build"
GETTEXT = BUILD / "gettext"
WEB = Path(__file__).resolve().parent / "web"
TEMPLATES = WEB / "templates"
FONT_PACKAGE = WEB / "node_modules" / "@fontsource" / "noto-sans-devanagari"
FONT_SITE_DIR = "fonts"
FONT_CSS = "devanagari.css"
# The regular and bold faces of the Devanagari subset: what a page of prose uses.
FONT_FILES = tuple(f"noto-sans-devanagari-devanagari-{weight}-normal.woff2" for weight in (400, 700))


@dataclass(frozen=True)
class Language:
    code: str  # Sphinx's language code
    label: str  # the language's name in itself, for the switch
    title: str  # the book's title in the language
    root: str  # the built site, relative to _build/ (the switch links between roots)
    student_root: str  # the student edition's site, relative to _build/
    search_bar_text: str = ""  # the search field's placeholder ("" keeps Jupyter Book's)


LANGUAGES = {
    "en": Language("en", "English", "", "html", "student/_build/html"),
    "hi": Language("hi", "हिन्दी", "गेटेड रिकरेंस: RNN से LSTM और Mamba तक", "hi/html", "hi-student/html",
                   "इस किताब में खोजें..."),
}
TRANSLATED = ("hi",)
# The documents whose translation is finished and read back (tests/test_translation.py holds
# each of them at 100%, none stale). The Hindi edition is done when this is the whole TOC.
COMPLETE = {
    "hi": [
        "book/intro", "book/how_to_use", "book/notation", "book/glossary",
        "notebooks/00_gates_are_sigmoids", "notebooks/01_vanilla_rnn", "notebooks/02_vanishing_gradients",
        "notebooks/03_lstm", "notebooks/04_lstm_variants", "notebooks/05_seq2seq_attention",
        "notebooks/06_rnns_in_practice", "notebooks/07_attention_transformers", "notebooks/08_ssm_mamba",
        "notebooks/09_gated_recurrence_returns", "book/instructors", "book/bibliography",
    ],
}


# ----------------------------------------------------------------------------- Sphinx extension
def other_language_links(app, pagename: str) -> list[dict]:
    """The same page in every other language: ``{"lang", "label", "url"}``, the url relative to the page."""
    here = app.config.language or "en"
    student = bool(app.config.hide_solutions) if "hide_solutions" in app.config else False
    roots = {code: (lang.student_root if student else lang.root) for code, lang in LANGUAGES.items()}
    if here not in roots:
        return []
    up = "../" * pagename.count("/")  # from the page to its site's root
    links = []
    for code, lang in LANGUAGES.items():
        if code == here:
            continue
        to_other = os.path.relpath(roots[code], roots[here]).replace(os.sep, "/")
        links.append({"lang": code, "label": lang.label, "url": f"{up}{to_other}/{pagename}.html"})
    return links


def theme_catalog(language: str, locales: Path = LOCALES) -> Path | None:
    """sphinx-book-theme's words in ``language`` (``booktheme.po``), compiled to ``.mo`` when the
    ``.mo`` is missing or older; None if there is no such catalog."""
    po = locales / language / "LC_MESSAGES" / "booktheme.po"
    if not po.exists():
        return None
    mo = po.with_suffix(".mo")
    if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
        with po.open("rb") as f:
            catalog = read_po(f, locale=language)
        with mo.open("wb") as f:
            write_mo(f, catalog)
    return mo


def _config_inited(app, config) -> None:
    # The themes' own words. sphinx-book-theme has no Hindi catalog ("booktheme"): ours is
    # merged into its translator here, before any page is written (Sphinx would compile our
    # .po only after the theme looked for it). pydata-sphinx-theme's words are in the "sphinx"
    # domain, which Sphinx reads from locale_dirs itself (locales/hi/LC_MESSAGES/sphinx.po).
    language = config.language or "en"
    if language != "en" and theme_catalog(language):
        init_locale([str(LOCALES)], language, "booktheme")
    config.templates_path = [*config.templates_path, str(TEMPLATES)]
    options = dict(config.html_theme_options or {})
    end = options.get("article_header_end", ["article-header-buttons.html"])
    end = [end] if isinstance(end, str) else list(end)
    if "language-switch.html" not in end:
        options["article_header_end"] = ["language-switch.html", *end]
    lang = LANGUAGES.get(config.language or "en")
    if lang is not None and lang.search_bar_text:  # Jupyter Book sets the English one
        options["search_bar_text"] = lang.search_bar_text
    config.html_theme_options = options


def _builder_inited(app) -> None:
    if app.builder.format == "html" and font_installed():  # without npm: the reader's own fonts
        app.add_css_file(f"../{FONT_SITE_DIR}/{FONT_CSS}")


def font_installed() -> bool:
    """Whether npm has installed the font (``site_assets`` runs ``npm ci`` before any builder starts)."""
    return all((FONT_PACKAGE / "files" / name).exists() for name in FONT_FILES)


def _html_page_context(app, pagename, templatename, context, doctree) -> None:
    context["course_languages"] = other_language_links(app, pagename)


def font_css() -> str:
    """@font-face rules for the served faces (Devanagari code points only, so a browser fetches a
    face only for a page with Devanagari on it), and the font stacks with those faces first."""
    rules = []
    for name in FONT_FILES:
        weight = name.rsplit("-", 2)[-2]
        rules.append(
            "@font-face {\n"
            '  font-family: "Noto Sans Devanagari";\n'
            f"  font-style: normal;\n  font-weight: {weight};\n  font-display: swap;\n"
            f'  src: url("{name}") format("woff2");\n'
            "  unicode-range: U+0900-097F, U+1CD0-1CF9, U+200C-200D, U+20A8, U+20B9, U+25CC, U+A830-A839, "
            "U+A8E0-A8FF;\n}\n"
        )
    stack = ('html {\n  --pst-font-family-base: "Noto Sans Devanagari", var(--pst-font-family-base-system);\n'
             '  --pst-font-family-heading: "Noto Sans Devanagari", var(--pst-font-family-base-system);\n}\n')
    return "".join(rules) + stack


def copy_font(outdir: Path, package: Path = FONT_PACKAGE) -> Path:
    """The Devanagari faces and their stylesheet in ``outdir/fonts``."""
    target = outdir / FONT_SITE_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name in FONT_FILES:
        source = package / "files" / name
        if not source.exists():
            raise ExtensionError(f"translation: {source} is missing: reinstall with `npm ci` in {WEB}")
        shutil.copy2(source, target / name)
    (target / FONT_CSS).write_text(font_css(), encoding="utf-8")
    return target


# Sphinx's own Hindi catalog for the search page leaves some messages empty, which the page
# then shows as blanks (the one after a search is its only summary). Ours fill them.
JS_MESSAGES = {
    "hi": {
        "Search finished, found ${resultCount} page(s) matching the search query.":
            "खोज पूरी हुई: ${resultCount} पृष्ठों में यह मिला।",
        "Searching for multiple words only shows matches that contain\n    all words.":
            "कई शब्द एक साथ खोजने पर केवल वे पृष्ठ दिखते हैं जिनमें सभी शब्द हों।",
    },
}


def fill_js_translations(outdir: Path, language: str) -> int:
    """Replace the empty messages of the site's ``_static/translations.js`` with ours, or drop
    them (an empty translation shows as a blank; a missing one falls back to English).
    Returns how many it changed."""
    path = outdir / "_static" / "translations.js"
    if not path.exists():
        return 0
    text = path.read_text(encoding="utf-8")
    ours = JS_MESSAGES.get(language, {})
    changed = 0

    def fill(match) -> str:
        nonlocal changed
        key = json.loads(match.group(1))
        changed += 1
        return f"{match.group(1)}: {json.dumps(ours[key], ensure_ascii=False)}" if key in ours else ""

    new = re.sub(r'("(?:[^"\\]|\\.)*"): ""', fill, text)
    new = re.sub(r",\s*,", ",", re.sub(r"\{\s*,", "{", re.sub(r",\s*\}", "}", new)))
    path.write_text(new, encoding="utf-8")
    return changed


def _build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    if (app.config.language or "en") in JS_MESSAGES:
        fill_js_translations(Path(app.outdir), app.config.language)
    if font_installed():
        copy_font(Path(app.outdir))


# Two kinds of text that Sphinx's own extraction misses, and this extension adds:
# * sphinx-exercise's titles: its subtitle nodes (the title an author gives an exercise) carry
#   no source and no raw text, and Sphinx extracts and translates only text with both. A
#   transform gives them both before Sphinx's i18n transform (priority 20) runs, so they are
#   translated like any paragraph, and the gettext builder is handed them as messages (after
#   reading: sphinx-exercise's post-transform later rebuilds the title without them).
# * figure alt texts: Sphinx's extraction skips an image node without a uid, which every image
#   of a notebook output is, and the gettext builder never sees those images at all (MyST-NB
#   keeps an output's image only for builders that write HTML). The extension hands their alt
#   texts to the catalog as it reads; Sphinx's i18n transform then translates them as usual.
class ExerciseTitles(SphinxTransform):
    """Give sphinx-exercise's subtitles a source and raw text, so that they are translated."""

    default_priority = 15

    def apply(self, **kwargs) -> None:
        for node in self.document.findall(exercise_subtitle):
            node.source = node.source or self.document["source"]
            node.line = node.line or 1
            node.rawsource = node.rawsource or node.astext()  # the message


class TranslatedExerciseRegistry(SphinxTransform):
    """After translation, the registry's copy of each exercise (its title in links) is the translated one."""

    default_priority = 25

    def apply(self, **kwargs) -> None:
        registry = getattr(self.env, "sphinx_exercise_registry", None)
        if not registry or (self.config.language or "en") == "en":
            return
        for node in self.document.findall(nodes.Element):
            if node.get("label") in registry and "serial_number" in node:
                registry[node["label"]]["node"] = node.deepcopy()


class TranslateInsertedToctrees(SphinxTransform):
    """Translate the captions and titles of the toctrees that sphinx-external-toc inserts
    (the parts of _toc.yml: "Getting started" ...). It inserts them at priority 100, after
    Sphinx's i18n transform, so they would stay English; the gettext builder extracts them
    from the document that holds them (book/intro), and this applies that catalog."""

    default_priority = 101

    def apply(self, **kwargs) -> None:
        language = self.config.language or "en"
        if language == "en" or self.app.builder.name == "gettext":
            return
        dirs = [str(Path(self.env.srcdir) / d) for d in self.config.locale_dirs]
        domain = docname_to_domain(self.env.docname, self.config.gettext_compact)
        catalog, found = init_locale(dirs, language, domain)
        if not found:
            return
        for node in self.document.findall(addnodes.toctree):
            if node.get("caption"):
                node["caption"] = catalog.gettext(node["caption"])
            node["entries"] = [(catalog.gettext(title) if title else title, doc) for title, doc in node["entries"]]


def _gettext_catalog(app):
    """The gettext builder's catalog for the document being read."""
    return app.builder.catalogs[docname_to_domain(app.env.docname, app.config.gettext_compact)]


def _doctree_read(app, doctree) -> None:
    if app.builder.name != "gettext":
        return
    catalog = _gettext_catalog(app)
    for node in doctree.findall(exercise_subtitle):
        node.uid = ""  # the gettext builder's origin needs one; its catalogs carry no uuids here
        catalog.add(node.rawsource, node)
    for node in doctree.findall(nodes.image):  # the images of a notebook's outputs exist only
        if node.get("alt"):  # until MyST-NB drops them for a builder that writes no HTML
            node.source = node.source or doctree["source"]
            node.line = node.line or _line_or_none(get_node_line, node)
            node.uid = ""
            catalog.add(node["alt"], node)


def _line_or_none(get_line, node):
    try:
        return get_line(node)
    except ValueError:
        return None


def setup(app) -> dict:
    app.add_transform(ExerciseTitles)
    app.add_transform(TranslatedExerciseRegistry)
    app.add_transform(TranslateInsertedToctrees)

    app.connect("config-inited", _config_inited)
    app.connect("doctree-read", _doctree_read)
    app.connect("builder-inited", _builder_inited)
    app.connect("html-page-context", _html_page_context)
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# ----------------------------------------------------------------------------- configuration
def book_config(language: str, *, student: bool = False, root: Path = ROOT) -> dict:
    """_config.yml for a build in ``language`` (gettext extraction uses "en"), with local
    extension paths made absolute so that the config can be written elsewhere."""
    from tools.course import load_config, student_config

    config = student_config(root) if student else load_config(root)
    sphinx_config = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx_config.update(
        language=language,
        locale_dirs=[str(root / "locales")],
        gettext_compact=False,  # one catalog per document: locales/hi/LC_MESSAGES/notebooks/03_lstm.po
        gettext_location=False,  # no source lines in the catalogs (they would change with every edit)
        gettext_uuid=False,
    )
    if language != "en":
        lang = LANGUAGES[language]
        config["title"] = lang.title + (" (विद्यार्थी संस्करण)" if student else "")
    local = config["sphinx"].get("local_extensions") or {}
    config["sphinx"]["local_extensions"] = {name: str((root / path).resolve()) for name, path in local.items()}
    return config


def extract(root: Path = ROOT, out: Path = GETTEXT) -> Path:
    """The message templates (.pot), one per document, in ``out``; returns that folder."""
    from tools.course import run_jupyter_book

    shutil.rmtree(out, ignore_errors=True)
    run_jupyter_book(root, book_config("en", root=root), out, ["--builder", "custom", "--custom-builder", "gettext"])
    return out / "_build" / "gettext"


def build(language: str = "hi", flags: list[str] = (), *, student: bool = False, root: Path = ROOT,
          build_dir: Path = BUILD) -> Path:
    """Build the book (or its student edition) in ``language``; returns its html folder."""
    from tools.course import run_jupyter_book

    lang = LANGUAGES[language]
    site = build_dir / (lang.student_root if student else lang.root)
    work = site.parent / ".jupyter-book"
    run_jupyter_book(root, book_config(language, student=student, root=root), work, list(flags))
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(work / "_build" / "html", site)
    return site


# ----------------------------------------------------------------------------- catalogs
def update_catalogs(templates: Path, language: str = "hi", locales: Path = LOCALES) -> list[Path]:
    """Merge every template under ``templates`` into ``locales/<language>/LC_MESSAGES``.

    A new message is added untranslated; a message whose English changed keeps its old
    translation marked fuzzy when Babel finds the old English close enough, and is otherwise
    added untranslated; a message that disappeared is dropped. Returns the catalogs written.
    """
    written = []
    for pot in sorted(templates.rglob("*.pot")):
        doc = pot.relative_to(templates).with_suffix("")
        po = locales / language / "LC_MESSAGES" / doc.with_suffix(".po")
        with pot.open("rb") as f:
            template = read_po(f)
        if po.exists():
            with po.open("rb") as f:
                catalog = read_po(f, locale=language)
            created = catalog.creation_date
            catalog.update(template, update_header_comment=False)
            catalog.creation_date = created  # the header changes only when a translator edits it
        else:
            with pot.open("rb") as f:
                catalog = read_po(f, locale=language)
            catalog.locale = language
        catalog.project, catalog.version = "Gated Recurrence (lstm_lab course)", ""
        catalog.obsolete.clear()
        po.parent.mkdir(parents=True, exist_ok=True)
        with po.open("wb") as f:
            write_po(f, catalog, width=0, omit_header=False, ignore_obsolete=True, include_previous=True)
        written.append(po)
    return written


@dataclass
class Coverage:
    document: str
    total: int
    translated: int
    fuzzy: int

    @property
    def untranslated(self) -> int:
        return self.total - self.translated - self.fuzzy

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.translated == self.total


def catalog_coverage(po: Path, document: str) -> Coverage:
    """How many of a catalog's messages are translated (and not fuzzy), fuzzy, or empty."""
    with po.open("rb") as f:
        catalog = read_po(f)
    messages = [m for m in catalog if m.id]
    translated = sum(1 for m in messages if m.string and not m.fuzzy)
    fuzzy = sum(1 for m in messages if m.fuzzy)
    return Coverage(document, len(messages), translated, fuzzy)


def toc_documents(root: Path = ROOT) -> list[str]:
    """Every document of ``_toc.yml``, root first, as Sphinx names them (no suffix)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    docs = [toc["root"]]
    for part in toc.get("parts", []):
        docs += [chapter["file"] for chapter in part.get("chapters", [])]
    return docs


def coverage(language: str = "hi", locales: Path = LOCALES, root: Path = ROOT) -> list[Coverage]:
    """The coverage of every document of the TOC in ``language`` (a missing catalog counts as empty)."""
    out = []
    for doc in toc_documents(root):
        po = locales / language / "LC_MESSAGES" / f"{doc}.po"
        out.append(catalog_coverage(po, doc) if po.exists() else Coverage(doc, 0, 0, 0))
    return out


def coverage_table(rows: list[Coverage]) -> str:
    lines = [f"{'document':45s} {'messages':>8s} {'done':>6s} {'fuzzy':>6s} {'empty':>6s}"]
    for row in rows:
        share = f"{row.translated / row.total:6.0%}" if row.total else "   -  "
        lines.append(f"{row.document:45s} {row.total:8d} {share} {row.fuzzy:6d} {row.untranslated:6d}")
    return "\n".join(lines)


# What a translation must keep exactly as its English has it: roles ({cite}`...`, {eq}`...`,
# {doc}`...`), maths ($...$, $$...$$), inline code, and link targets.
PROTECTED = re.compile(r"\{[a-z:-]+\}`[^`]*`|\$\$.*?\$\$|\$[^$]+\$|``[^`]+``|`[^`]+`|\]\([^)\s]+\)", re.S)


# A message that is a whole display equation (MyST's amsmath blocks are extracted as messages).
DISPLAY_MATHS = re.compile(r"\s*\\begin\{[a-z*]+\}")


def protected_spans(text: str) -> list[str]:
    """The spans of ``text`` that a translation keeps verbatim, sorted (a translation may reorder them)."""
    return sorted(PROTECTED.findall(text))


def check_catalog(po: Path) -> list[str]:
    """Every translated message of ``po`` whose maths, code, roles or links differ from its English."""
    with po.open("rb") as f:
        catalog = read_po(f)
    problems = []
    for message in catalog:
        if not message.id or not message.string:
            continue
        if DISPLAY_MATHS.match(message.id) and message.string != message.id:  # a whole equation
            problems.append(f"{po.name}: the equation {message.id.strip()[:50]!r} must be kept as it is")
            continue
        want, got = protected_spans(message.id), protected_spans(message.string)
        if want != got:
            missing = [s for s in want if s not in got]
            extra = [s for s in got if s not in want]
            problems.append(f"{po.name}: {message.id[:60]!r}: missing {missing}, unexpected {extra}")
    return problems


# ----------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.translation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("update", help="extract the messages and merge them into locales/<language>/")
    sub.add_parser("build", help="build the translated book; further options go to jupyter-book build")
    sub.add_parser("student", help="build the translated student edition; options as for build")
    sub.add_parser("coverage", help="translation coverage per document; exit 1 unless complete")
    sub.add_parser("check", help="every translation keeps its message's maths, code, roles and links")
    for p in sub.choices.values():
        p.add_argument("--language", default="hi", choices=TRANSLATED)
    for name in ("build", "student"):
        sub.choices[name].add_argument("--out", type=Path, default=BUILD,
                                       help="the build folder that stands for _build/ (default: _build)")
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("build", "student"):
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    if args.command == "update":
        written = update_catalogs(extract(), args.language)
        print(f"{len(written)} catalogs in {LOCALES / args.language / 'LC_MESSAGES'}")
    elif args.command in ("build", "student"):
        site = build(args.language, extra, student=args.command == "student", build_dir=args.out)
        print(f"{LANGUAGES[args.language].label}: {site / 'index.html'}")
    elif args.command == "check":
        problems = [p for po in sorted((LOCALES / args.language).rglob("*.po")) for p in check_catalog(po)]
        print("\n".join(problems) or "every translation keeps its maths, code, roles and links")
        return 1 if problems else 0
    else:
        rows = coverage(args.language)
        print(coverage_table(rows))
        return 0 if all(row.complete for row in rows) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
