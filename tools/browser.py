"""The built book in a real browser: Debian's Chromium, driven headless through Playwright.

    python -m tools.browser check _build/html                # every page, both widths: exit 1 on a problem
    python -m tools.browser shots _build/html OUT page.html  # screenshots at 1280 and 390 px
    python -m tools.browser weight _build/html page.html     # bytes a reader's browser loads for a page
    python -m tools.browser pdf _build/singlehtml OUT.pdf    # print the one-page build to PDF

Playwright drives the browser already on the machine (``/usr/bin/chromium``, Debian's package
``chromium``); it never downloads one. The site is served from ``127.0.0.1`` and every
request for another host is refused and recorded, so a page that works here works offline.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DESKTOP = 1280
PHONE = 390
INSTALL_HINT = ("install Debian's Chromium (`sudo apt-get install chromium`) or point "
                "COURSE_CHROMIUM at a Chromium/Chrome binary; Playwright comes with `make env`")


def find_chromium() -> str | None:
    """The system's Chromium: $COURSE_CHROMIUM, then the usual names on PATH."""
    named = os.environ.get("COURSE_CHROMIUM")
    if named:
        return named if Path(named).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_browser() -> str | None:
    """Why the browser checks cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed: run `make env`"
    if find_chromium() is None:
        return "no Chromium found: " + INSTALL_HINT
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve(root: Path):
    """Serve ``root`` on a free port of 127.0.0.1; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def chromium():
    """A headless Chromium from the system, through Playwright."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        raise RuntimeError("no Chromium found: " + INSTALL_HINT)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Visit:
    """What one page did in the browser at one width."""

    url: str
    width: int
    external: list[str] = field(default_factory=list)   # requests refused: another host
    failed: list[str] = field(default_factory=list)     # local requests that failed or gave >= 400
    console: list[str] = field(default_factory=list)    # console errors and uncaught exceptions
    facts: dict = field(default_factory=dict)

    def problems(self) -> list[str]:
        out = [f"request to another host: {u}" for u in self.external]
        out += [f"failed request: {u}" for u in self.failed]
        out += [f"console: {m}" for m in self.console]
        f = self.facts
        out += [f"raw TeX in the rendered text: {t!r}" for t in f.get("raw_tex", [])]
        out += [f"equation not typeset: {t!r}" for t in f.get("untypeset", [])]
        out += [f"image did not load: {s}" for s in f.get("broken_images", [])]
        out += [f"image without a real alt text: {s}" for s in f.get("images_without_alt", [])]
        out += [f"figure without a numbered caption: {s}" for s in f.get("figures_without_caption", [])]
        out += [f"image out of proportion: {s}" for s in f.get("distorted_images", [])]
        if f.get("page_width", 0) > self.width:
            out.append(f"page is {f['page_width']} px wide at a {self.width} px viewport; "
                       f"widest: {f.get('widest')}")
        out += [f"punctuation on a new line after a formula: {t!r}" for t in f.get("punctuation_parted", [])]
        out += [f"icon not drawn: {c}" for c in f.get("blank_icons", [])]
        if f.get("search_fields", 0) > 1:
            out.append(f"{f['search_fields']} search fields in sight")
        if self.width >= DESKTOP:
            out += [f"code scrolls sideways at {self.width} px: {line!r}"
                    for line in f.get("code_blocks_scrolling", [])]
        for name in ("toc_toggle", "toc_toggle_back"):
            if name in f and f[name] is not True:
                out.append(f"{name}: {f[name]}")
        return out


# Runs in the page once it has loaded and MathJax has finished: what a reader would see.
_INSPECT = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const main = document.querySelector("main") || document.body;
  // Text outside code, with MathJax's output and its screen-reader copy left out.
  const clone = main.cloneNode(true);
  clone.querySelectorAll("pre, code, script, style, mjx-container, mjx-assistive-mml, .highlight")
       .forEach((e) => e.remove());
  const text = clone.innerText || "";
  const raw = [];
  const commands = "frac|mathbf|boldsymbol|sum|odot|sigma|tanh|begin|left|right|text|top|in|cdot|"
                 + "mathrm|operatorname|alpha|Delta|partial";
  const tex = new RegExp("\\\\\\(|\\\\\\[|\\$\\$|\\\\(" + commands + ")\\b", "g");
  let m;
  while ((m = tex.exec(text)) !== null && raw.length < 5) {
    raw.push(text.slice(Math.max(0, m.index - 30), m.index + 30).replace(/\s+/g, " "));
  }
  const untypeset = Array.from(document.querySelectorAll("span.math, div.math"))
    .filter((e) => !e.querySelector("mjx-container"))
    .slice(0, 5).map((e) => e.textContent.slice(0, 60));
  const images = Array.from(document.images);
  const broken = images.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.src);
  // Alt text a screen reader can use: present, and not a file name.
  const noAlt = images.filter((i) => !i.closest(".navbar-brand, .btn, .dropdown-menu"))
    .filter((i) => { const a = (i.getAttribute("alt") || "").trim();
                     return a.length < 10 || /\.(png|svg|jpe?g)$/i.test(a) || a.includes("_images/"); })
    .map((i) => (i.getAttribute("alt") || "(none)") + " " + i.src.split("/").pop());
  // Images drawn at another aspect ratio than their pixels (a fixed height kept while the
  // width shrinks to the column squashes a figure).
  const distorted = images.filter((i) => i.naturalWidth > 0 && i.clientWidth > 0 && i.clientHeight > 0)
    .filter((i) => Math.abs((i.clientWidth / i.clientHeight) / (i.naturalWidth / i.naturalHeight) - 1) > 0.03)
    .map((i) => `${i.src.split("/").pop()} drawn ${i.clientWidth}x${i.clientHeight}, `
                + `pixels ${i.naturalWidth}x${i.naturalHeight}`);
  const uncaptioned = Array.from(document.querySelectorAll("div.cell_output img"))
    .filter((i) => !i.closest("figure") || !i.closest("figure").querySelector("figcaption .caption-number"))
    .map((i) => i.src.split("/").pop());
  // Punctuation that a line break has parted from the formula before it (", ." alone at the
  // start of a line): the formula's box is an inline block, and browsers may break after one.
  const parted = [];
  document.querySelectorAll("mjx-container:not([display='true'])").forEach((math) => {
    const holder = math.closest("span.math") || math;
    if (holder.closest(".toggle-hidden")) { return; }  // a closed solution: no lines to look at
    const next = holder.nextSibling;
    if (!next || next.nodeType !== Node.TEXT_NODE || !/^[.,;:!?)\]]/.test(next.textContent)) { return; }
    const range = document.createRange();
    range.setStart(next, 0);
    range.setEnd(next, 1);
    const mark = range.getBoundingClientRect();
    const box = math.getBoundingClientRect();
    if (mark.height > 0 && box.height > 0 && mark.top >= box.bottom - 1 && parted.length < 5) {
      parted.push((holder.textContent || "").slice(0, 30) + next.textContent.slice(0, 1));
    }
  });
  const vw = window.innerWidth;
  let widest = null;
  let widestRight = vw;
  document.querySelectorAll("body *").forEach((e) => {
    const r = e.getBoundingClientRect();
    if (r.right > widestRight + 1 && r.width > 0) {
      let scroller = false;
      for (let p = e.parentElement; p; p = p.parentElement) {
        const s = getComputedStyle(p);
        if (["auto", "scroll", "hidden"].includes(s.overflowX) && p !== document.body
            && p !== document.documentElement) { scroller = true; break; }
      }
      if (!scroller) {
        widestRight = r.right;
        widest = e.tagName.toLowerCase() + (e.className ? "." + String(e.className).split(" ")[0] : "")
                 + ": " + (e.textContent || "").trim().slice(0, 50);
      }
    }
  });
  // Code blocks wider than their box (solutions are measured opened, as a reader opens them).
  const hidden = Array.from(document.querySelectorAll(".toggle-hidden"));
  hidden.forEach((e) => e.classList.remove("toggle-hidden"));
  const codeScrolls = Array.from(document.querySelectorAll("div.cell_input pre, div.solution pre"))
    .filter((p) => p.clientWidth > 0 && p.scrollWidth > p.clientWidth + 1)
    .map((p) => p.textContent.split("\n").reduce((a, b) => (b.length > a.length ? b : a), "").slice(0, 80));
  hidden.forEach((e) => e.classList.add("toggle-hidden"));
  const solutionCode = document.querySelectorAll("div.solution pre").length;
  // Icons drawn: each visible Font Awesome <i> has a glyph from a Font Awesome font.
  const blankIcons = Array.from(document.querySelectorAll("i[class*='fa-'], span[class*='fa-']"))
    .filter((i) => i.offsetParent !== null)
    .filter((i) => { const s = getComputedStyle(i, "::before");
                     return ["none", "normal", '""'].includes(s.content) || !/Font Awesome/.test(s.fontFamily); })
    .map((i) => i.className);
  // One search field in sight: a second one is a header bar that costs a phone-sized strip.
  const searchFields = Array.from(document.querySelectorAll(".search-button-field"))
    .filter((e) => e.offsetParent !== null && e.getBoundingClientRect().height > 0).length;
  return {
    raw_tex: raw, untypeset: untypeset, broken_images: broken, images: images.length,
    images_without_alt: noAlt, figures_without_caption: uncaptioned, distorted_images: distorted,
    equations: document.querySelectorAll("mjx-container").length,
    page_width: document.documentElement.scrollWidth, widest: widest,
    code_blocks_scrolling: codeScrolls, solution_code_blocks: solutionCode, search_fields: searchFields,
    blank_icons: blankIcons,
    punctuation_parted: parted,
  };
}
"""

# Clicks the visible table-of-contents button; true when the site navigation becomes visible.
_TOGGLE = r"""
async (phone) => {
  const visible = (e) => !!e && e.offsetParent !== null && getComputedStyle(e).visibility !== "hidden";
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const button = Array.from(document.querySelectorAll(".primary-toggle")).find(visible);
  if (!button) { return "no visible table-of-contents button"; }
  const nav = () => document.querySelector(".bd-docs-nav a.reference");
  const shown = () => { const a = nav(); if (!a) return false;
                        const r = a.getBoundingClientRect();
                        return visible(a) && r.width > 0 && r.right > 0 && r.left < window.innerWidth; };
  const before = shown();
  if (phone && before) { return "the table of contents is already open at phone width"; }
  button.click();
  // The sidebar slides: wait until it has changed (at most 2 s), then let it settle.
  for (let waited = 0; waited < 2000 && shown() === before; waited += 50) { await sleep(50); }
  await sleep(150);
  const after = shown();
  if (phone) {
    const dialog = document.querySelector("#pst-primary-sidebar-modal");
    if (!(dialog && dialog.open && after)) { return "the button did not open the table of contents"; }
    return true;
  }
  if (!before) { return "the table of contents is not shown on a wide screen"; }
  if (after) { return "the button did not hide the table of contents"; }
  return true;
}
"""


LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def is_local(url: str) -> bool:
    """True for the served site and for data: and blob: URLs, which never leave the machine."""
    return url.startswith(("data:", "blob:")) or urlsplit(url).hostname in LOCAL_HOSTS


def offline_context(browser, width: int, refused: list[str] | None = None, scale: int = 1):
    """A browser context ``width`` px wide (a desktop's or a phone's height) in which every
    request for another host is refused, and recorded in ``refused`` when it is given."""
    context = browser.new_context(viewport={"width": width, "height": 900 if width > 600 else 844},
                                  device_scale_factor=scale, service_workers="block")

    def route(r):
        if is_local(r.request.url):
            r.continue_()
        else:
            if refused is not None:
                refused.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return context


def visit(browser, url: str, width: int, toggle: bool = True) -> Visit:
    """Load ``url`` offline at ``width`` px and record what a reader would meet."""
    result = Visit(url=url, width=width)
    context = offline_context(browser, width, refused=result.external)
    page = context.new_page()
    page.on("console", lambda m: result.console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: result.console.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: None if urlsplit(r.url).hostname not in LOCAL_HOSTS
            else result.failed.append(f"{r.url} ({r.failure})"))

    def response(r):
        if urlsplit(r.url).hostname in LOCAL_HOSTS and r.status >= 400:
            result.failed.append(f"{r.url} ({r.status})")

    page.on("response", response)
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    with contextlib.suppress(Exception):  # a page whose maths never typesets is reported below
        _wait_for_maths(page, timeout_ms=20_000)
    if "search.html?q=" in url:  # wait for every result's snippet
        # finished: the results' heading no longer says "Searching" (in the book's language)
        page.wait_for_function("() => { const h = document.querySelector('#search-results h2');"
                               " return !!h && h.firstChild.textContent !== Documentation.gettext('Searching'); }",
                               timeout=60_000)
    result.facts = page.evaluate(_INSPECT)
    result.facts["search_results"] = len(page.query_selector_all("#search-results li"))
    # Requests refused on purpose log a console error; they are reported once, as external.
    result.console = [m for m in result.console if "net::ERR_FAILED" not in m]
    if toggle and page.query_selector(".primary-toggle"):
        result.facts["toc_toggle"] = page.evaluate(_TOGGLE, width < 992)
    context.close()
    return result


def html_pages(html: Path) -> list[Path]:
    """Every page of the built book a reader can reach, redirects and the index aside."""
    pages = [p for p in sorted(html.rglob("*.html")) if not {"_static", "_sources", "mathjax"} & set(p.parts)]
    return [p for p in pages if "http-equiv=\"refresh\"" not in p.read_text(encoding="utf-8")[:2000].lower()]


# Searches whose results come from the maths-heavy chapters: their snippets must read as text.
SEARCHES = ("gradient", "forget gate", "selective state")


def visit_all(html: Path, widths=(DESKTOP, PHONE), searches=SEARCHES) -> dict[str, Visit]:
    """Every page at every width, and the search page with each query, keyed 'page @ width'."""
    visits = {}
    rels = [p.relative_to(html).as_posix() for p in html_pages(html)]
    rels += [f"search.html?q={q.replace(' ', '+')}" for q in searches]
    with serve(html) as base, chromium() as browser:
        for rel in rels:
            for width in widths:
                visits[f"{rel} @ {width}"] = visit(browser, base + rel, width)
    return visits


def check(html: Path, widths=(DESKTOP, PHONE)) -> dict[str, list[str]]:
    """Every page at every width; a map from 'page @ width' to its problems (empty: none)."""
    return {key: v.problems() for key, v in visit_all(html, widths).items()}


def screenshots(html: Path, out: Path, rels: list[str], widths=(DESKTOP, PHONE)) -> list[Path]:
    """Screenshots of each page: its top, its first figure, and at phone width the open contents."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    with serve(html) as base, chromium() as browser:
        for rel in rels:
            for width in widths:
                context = offline_context(browser, width, scale=2 if width < 600 else 1)
                page = context.new_page()
                page.goto(base + rel, wait_until="networkidle")
                _wait_for_maths(page)
                stem = Path(rel).stem
                path = out / f"{stem}-{width}.png"
                page.screenshot(path=str(path))
                made.append(path)
                figure = page.query_selector("figure")
                if figure is not None:  # the first figure with its caption, as a reader scrolls to it
                    figure.scroll_into_view_if_needed()
                    path = out / f"{stem}-{width}-figure.png"
                    page.screenshot(path=str(path))
                    made.append(path)
                    page.evaluate("() => window.scrollTo(0, 0)")
                if width < 600:
                    page.evaluate(_TOGGLE, True)
                    path = out / f"{stem}-{width}-toc.png"
                    page.screenshot(path=str(path))
                    made.append(path)
                context.close()
    return made


_WEIGHT = """() => {
  const entries = [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")];
  const byKind = {};
  for (const e of entries) {
    const path = new URL(e.name).pathname;
    const kind = e.entryType === "navigation" ? "html" : path.includes("/mathjax/") ? "mathjax"
      : /\\.(png|jpe?g|svg|gif)$/.test(path) ? "images" : /\\.(woff2?|ttf)$/.test(path) ? "fonts"
      : /\\.js$/.test(path) ? "scripts" : /\\.css$/.test(path) ? "styles" : "other";
    byKind[kind] = (byKind[kind] || 0) + e.decodedBodySize;
  }
  return byKind;
}"""


def page_weight(html: Path, rel: str) -> dict:
    """Bytes (uncompressed) the browser loads for a page at 1280 px, by kind, and the requests
    to other hosts that were refused (a CDN's bytes are not counted, as offline)."""
    with serve(html) as base, chromium() as browser:
        refused = []
        context = offline_context(browser, DESKTOP, refused=refused)
        page = context.new_page()
        page.goto(base + rel, wait_until="networkidle")
        with contextlib.suppress(Exception):
            _wait_for_maths(page, timeout_ms=20_000)
        page.wait_for_load_state("networkidle")
        by_kind = page.evaluate(_WEIGHT)
        context.close()
    return {"page": rel, "bytes": sum(by_kind.values()), "by_kind": by_kind, "refused_external": refused}


def _wait_for_maths(page, timeout_ms: int = 120_000) -> None:
    """Return once MathJax has typeset the page (at once if the page has no maths, or loads no
    MathJax: its formulas are then reported as not typeset, without a wait)."""
    if page.query_selector(".math") is None or page.query_selector("script[src*='mathjax' i]") is None:
        return
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                           timeout=timeout_ms)
    page.evaluate("async () => { await MathJax.startup.promise; }")


@dataclass
class Printout:
    """A printed book: the PDF, its page count, and what the print layout cut or left raw."""

    pdf: Path
    pages: int
    code_cut: list[str]       # code lines wider than the printed page (they would be cut)
    untypeset: list[str]      # maths MathJax did not typeset


def count_pdf_pages(pdf: Path) -> int:
    """Pages of a PDF that Chromium wrote (its page objects are uncompressed)."""
    import re

    return len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf.read_bytes()))


def print_book(singlehtml: Path, out: Path) -> Printout:
    """Print Jupyter Book's one-page build (``--builder singlehtml``) to an A4 PDF.

    The builder writes the whole book into the root document's file (``book/intro.html``)
    with links relative to the site root, so a copy of it at the root is what is printed.
    Printed with the site's print stylesheet: sidebars hidden, code wrapped, maths typeset.
    """
    redirect = (singlehtml / "index.html").read_text(encoding="utf-8")
    target = redirect.split("url=", 1)[1].split('"', 1)[0].strip() if "url=" in redirect else "index.html"
    page_file = singlehtml / "_print.html"
    page_file.write_text((singlehtml / target).read_text(encoding="utf-8"), encoding="utf-8")
    with serve(singlehtml) as base, chromium() as browser:
        context = offline_context(browser, DESKTOP)
        page = context.new_page()
        page.goto(base + page_file.name, wait_until="load", timeout=300_000)
        _wait_for_maths(page)
        # Solutions are dropdowns on screen; on paper they are printed open.
        page.evaluate("() => document.querySelectorAll('.toggle-hidden')"
                      ".forEach((e) => e.classList.remove('toggle-hidden'))")
        page.emulate_media(media="print")
        facts = page.evaluate("""() => ({
          cut: Array.from(document.querySelectorAll("pre"))
                 .filter((p) => p.clientWidth > 0 && p.scrollWidth > p.clientWidth + 1)
                 .map((p) => p.textContent.trim().split("\\n")[0].slice(0, 60)),
          untypeset: Array.from(document.querySelectorAll("span.math, div.math"))
                 .filter((e) => !e.querySelector("mjx-container")).map((e) => e.textContent.slice(0, 60)),
        })""")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.pdf(path=str(out), format="A4", print_background=True, outline=True, tagged=True,
                 margin={"top": "16mm", "bottom": "16mm", "left": "14mm", "right": "14mm"})
        context.close()
    page_file.unlink()
    return Printout(pdf=out, pages=count_pdf_pages(out), code_cut=facts["cut"], untypeset=facts["untypeset"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.browser", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check")
    c.add_argument("html", type=Path)
    s = sub.add_parser("shots")
    s.add_argument("html", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("pages", nargs="+")
    w = sub.add_parser("weight")
    w.add_argument("html", type=Path)
    w.add_argument("pages", nargs="+")
    p = sub.add_parser("pdf")
    p.add_argument("singlehtml", type=Path)
    p.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    why = missing_browser()
    if why:
        print(f"tools.browser: {why}", file=sys.stderr)
        return 2
    if args.command == "check":
        report = check(args.html)
        bad = {k: v for k, v in report.items() if v}
        for key, problems in bad.items():
            print(key)
            for problem in problems:
                print("   ", problem)
        print(f"{len(report)} page views, {len(bad)} with problems")
        return 1 if bad else 0
    if args.command == "shots":
        for path in screenshots(args.html, args.out, args.pages):
            print(path)
        return 0
    if args.command == "weight":
        for rel in args.pages:
            print(json.dumps(page_weight(args.html, rel)))
        return 0
    printout = print_book(args.singlehtml, args.out)
    print(f"{printout.pdf}: {printout.pages} pages, {printout.pdf.stat().st_size / 1e6:.1f} MB")
    for line in printout.code_cut:
        print(f"    code wider than the page: {line!r}")
    for text in printout.untypeset:
        print(f"    maths not typeset: {text!r}")
    return 1 if printout.code_cut or printout.untypeset else 0


if __name__ == "__main__":
    sys.exit(main())
