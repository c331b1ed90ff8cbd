"""The repository holds together: one repository URL, one setup cell, matching dependency
lists, a table of contents of existing pages, executed notebooks, and a test for every
labelled equation."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement

from tools import course

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = course.ROOT
NOTEBOOKS = course.notebook_paths()
BOOK_PAGES = sorted((ROOT / "book").glob("*.md"))


def _nb(path: Path):
    return nbformat.read(path, as_version=4)


def _markdown_sources() -> dict[str, str]:
    """Every piece of book prose: the book pages and the notebooks' markdown cells."""
    sources = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in BOOK_PAGES}
    for path in NOTEBOOKS:
        cells = [c.source for c in _nb(path).cells if c.cell_type == "markdown"]
        sources[str(path.relative_to(ROOT))] = "\n\n".join(cells)
    return sources


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


# ----------------------------------------------------------------------------- one URL, one setup cell
def test_sync_is_up_to_date():
    stale = [str(p.relative_to(ROOT)) for p in course.planned_changes()]
    assert not stale, f"these files disagree with _config.yml; run `make sync`: {stale}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_the_setup_cell(path):
    first = _nb(path).cells[0]
    assert first.cell_type == "code"
    assert first.source == course.setup_cell_source(), f"{path.name}: first cell is not the setup cell"
    url, branch = course.repository()
    assert f"git+{url}@{branch}" in first.source
    assert not first.outputs, "the setup cell prints nothing outside Colab"


def test_setup_cell_installs_only_on_colab_and_only_when_missing():
    src = course.setup_cell_source()
    assert '"google.colab" in sys.modules' in src
    assert 'find_spec("lstm_lab") is None' in src
    # pip's default strategy installs only missing dependencies; never force or upgrade.
    for flag in ("--upgrade", "-U", "--force-reinstall", "--ignore-installed"):
        assert flag not in src.split()
    # Outside Colab the cell must do nothing: run it here and check nothing was attempted.
    calls = []
    fake_subprocess = type("S", (), {"run": staticmethod(lambda *a, **k: calls.append(a))})
    namespace: dict = {}
    exec(src.replace("import subprocess\n", ""), {"subprocess": fake_subprocess}, namespace)
    assert calls == []


def test_repository_url_is_the_same_everywhere():
    url, branch = course.repository()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["urls"]["Homepage"] == url
    assert pyproject["project"]["urls"]["Source"] == url
    readme = (ROOT / "README.md").read_text()
    for rel, (colab, binder) in course.launch_links().items():
        assert colab in readme and binder in readme
        assert colab.endswith(f"/blob/{branch}/{rel}")
    # Nothing else hard-codes a different address for the course repository.
    owner = url.split("/")[3]
    for path in [ROOT / "README.md", *BOOK_PAGES]:
        for found in re.findall(rf"https://github\.com/{owner}/[\w.-]+", path.read_text()):
            assert found == url, f"{path.name} names {found}, _config.yml says {url}"


# ----------------------------------------------------------------------------- dependencies
def _pyproject_runtime() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {Requirement(d).name.lower(): str(Requirement(d).specifier) for d in deps}


CONDA_TO_PIP = {"pytorch-cpu": "torch", "pytorch": "torch", "matplotlib-base": "matplotlib"}


def test_runtime_dependencies_are_few_and_ranges():
    runtime = _pyproject_runtime()
    assert set(runtime) == {"numpy", "matplotlib", "torch"}
    for name, spec in runtime.items():
        assert spec.startswith(">="), f"{name}: use a lower bound, not a pin ({spec})"


def test_environment_yml_names_the_same_runtime_dependencies():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    conda = {}
    for dep in env["dependencies"]:
        assert isinstance(dep, str), "lstm_lab is installed by postBuild, not by a pip: section"
        name, spec = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", dep).groups()
        conda[name] = spec.replace(" ", "")
    assert conda.pop("python") == "=3.11"
    conda.pop("pip")
    assert "pytorch-cpu" in conda, "Binder needs a CPU-only PyTorch (1-2 GB of RAM)"
    assert {CONDA_TO_PIP.get(k, k): v for k, v in conda.items()} == _pyproject_runtime()


def test_binder_installs_lstm_lab_from_the_checkout():
    post = (ROOT / "postBuild").read_text()
    assert "pip install --no-deps" in post and post.rstrip().endswith(".")
    assert (ROOT / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make book" in readme
    assert re.search(r"(?m)^make test$", (ROOT / ".ci" / "run").read_text())


# ----------------------------------------------------------------------------- book structure
def _toc_files(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root"):
                files.append(value)
            else:
                files += _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            files += _toc_files(item)
    return files


def test_toc_lists_existing_pages_and_every_page_is_listed():
    toc = _toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    for entry in toc:
        candidates = [ROOT / f"{entry}{ext}" for ext in (".md", ".ipynb")]
        assert any(c.exists() for c in candidates), f"_toc.yml lists {entry}, which does not exist"
    listed = set(toc)
    for path in [*BOOK_PAGES, *NOTEBOOKS]:
        stem = str(path.relative_to(ROOT).with_suffix(""))
        assert stem in listed, f"{stem} is not in _toc.yml"


def test_config_launch_buttons_and_bibliography():
    config = course.load_config()
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert config["execute"]["execute_notebooks"] == "off"
    assert "sphinx_exercise" in config["sphinx"]["extra_extensions"]
    for bib in config["bibtex_bibfiles"]:
        assert (ROOT / bib).exists()


SEED_KEYS = ["hochreiter1997lstm", "gers2000forget", "cho2014gru", "greff2017odyssey",
             "jozefowicz2015empirical", "olah2015understanding", "vaswani2017attention", "gu2023mamba"]


def test_bibliography_writes_accents_in_utf8_not_tex():
    """pybtex builds the alpha labels from the raw names: Ko{\\v{c}}isk{\\'y} gives [AKovciskyB16]."""
    text = (ROOT / "references.bib").read_text(encoding="utf-8")
    escaped = re.findall(r"\{\\[^{}]*(?:\{[^{}]*\})?\}", text)
    assert not escaped, f"write these accents as UTF-8 characters: {sorted(set(escaped))}"


def test_bibliography_has_the_seed_references_and_every_citation():
    bib = (ROOT / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,\s]+),", bib))
    assert set(SEED_KEYS) <= keys
    for name, text in _markdown_sources().items():
        for group in re.findall(r"\{cite(?::[pt])?\}`([\w,\s-]+)`", text):
            for key in group.split(","):
                assert key.strip() in keys, f"{name} cites unknown key {key!r}"


# ----------------------------------------------------------------------------- notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_executed_in_order(path):
    nb = _nb(path)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: run top to bottom (`make execute`)"
    assert any(c.outputs for c in code), f"{path.name}: no stored outputs"
    for cell in code:
        for out in cell.outputs:
            assert out.output_type != "error", f"{path.name}: a stored output is an error"
            assert not (out.output_type == "stream" and out.name == "stderr"), (
                f"{path.name}: stored stderr output (warnings make nbval fragile): {out.text[:200]}"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_seeded_and_uses_the_package(path):
    src = "\n".join(c.source for c in _nb(path).cells if c.cell_type == "code")
    assert "seed_everything(" in src
    assert "import lstm_lab" in src or "from lstm_lab" in src


NBVAL_OPT_OUT_TAG = "nbval-ignore-output"
NBVAL_REASON_KEY = "nbval-ignore-output-reason"
MAX_OPT_OUTS = 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_opt_outs_are_rare_justified_and_real(path):
    """An output nbval does not compare is a cell tagged 'nbval-ignore-output' (readers do not
    see tags), with its reason in the cell's metadata under 'nbval-ignore-output-reason'; nbval
    must really read the tag. Comment markers, which the HTML shows, and tags that skip a cell
    or expect an error are not allowed."""
    from nbval.plugin import comment_markers, find_metadata_tags

    code = [c for c in _nb(path).cells if c.cell_type == "code"]
    for cell in code:
        markers = [m for m in comment_markers if m in cell.source]
        assert not markers, f"{path.name}: write the nbval opt-out as a cell tag, not {markers} in the code"
        tags = cell.metadata.get("tags", [])
        for tag in ("nbval-skip", "nbval-raises-exception", "raises-exception", "nbval-check-output"):
            assert tag not in tags, f"{path.name}: the tag {tag!r} is not allowed"
    opted = [c for c in code if NBVAL_OPT_OUT_TAG in c.metadata.get("tags", [])]
    for cell in opted:
        reason = cell.metadata.get(NBVAL_REASON_KEY, "")
        assert isinstance(reason, str) and len(reason) >= 20, (
            f"{path.name}: an opted-out cell needs its reason in metadata[{NBVAL_REASON_KEY!r}]: "
            f"{cell.source[:80]!r}"
        )
        assert dict(find_metadata_tags(cell.metadata)).get("check") is False, "nbval does not see the opt-out"
    assert len(opted) <= MAX_OPT_OUTS, f"{path.name}: {len(opted)} nbval opt-outs, at most {MAX_OPT_OUTS}"
    stray = [c for c in code if NBVAL_REASON_KEY in c.metadata and c not in opted]
    assert not stray, f"{path.name}: a reason for an opt-out on a cell that is not tagged {NBVAL_OPT_OUT_TAG!r}"


# ----------------------------------------------------------------------------- equations
DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$[ \t]*(?:\(([^)\s]+)\))?", re.S)


def _equations() -> dict[str, list[str | None]]:
    found = {}
    for name, text in _markdown_sources().items():
        labels = [m.group(2) for m in DISPLAY_MATH.finditer(text)]
        assert "\\begin{equation" not in text and "{math}" not in text, (
            f"{name}: write display equations as $$ ... $$ (eq-label)"
        )
        found[name] = labels
    return found


def _tested_labels() -> set[str]:
    labels = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        for args in re.findall(r"mark\.equation\(([^)]*)\)", path.read_text()):
            labels |= set(re.findall(r"[\"']([^\"']+)[\"']", args))
    return labels


def test_every_display_equation_has_a_label():
    for name, labels in _equations().items():
        assert None not in labels, f"{name}: a display equation has no label; write $$ ... $$ (eq-name)"


def test_every_labelled_equation_has_a_test():
    labelled = {label for labels in _equations().values() for label in labels if label}
    assert labelled, "the book has no labelled equations"
    untested = labelled - _tested_labels()
    assert not untested, f"labelled equations without a @pytest.mark.equation test: {sorted(untested)}"


def test_every_equation_marker_names_a_real_equation():
    labelled = {label for labels in _equations().values() for label in labels if label}
    unknown = _tested_labels() - labelled
    assert not unknown, f"tests mark equations the book does not have: {sorted(unknown)}"


def _list_markers_inside_inline_math(text: str) -> list[str]:
    """Lines that start with "+ ", "- " or "* " while a $...$ of their paragraph is still open.

    Markdown reads such a line as a list item, which breaks the formula in two and shows raw TeX
    (the strict build does not warn). Display math ($$ ... $$) and code blocks are skipped.
    """
    found, open_dollars, fenced, display = [], 0, False, False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fenced = not fenced
        if fenced or stripped.startswith("```"):
            continue
        if stripped.startswith("$$"):
            display = not display if stripped.count("$$") == 1 else display
            open_dollars = 0
            continue
        if display:
            continue
        if not stripped:
            open_dollars = 0
            continue
        if open_dollars % 2 and re.match(r"[-+*] ", stripped):
            found.append(line)
        open_dollars += len(re.findall(r"(?<!\\)\$", line))
    return found


def test_the_inline_math_list_check_finds_a_broken_formula():
    assert _list_markers_inside_inline_math("a $x = y\n+ z$ and\n- a real item") == ["+ z$ and"]
    assert _list_markers_inside_inline_math("a $x$ here\n- a list item\n\n$$\na\n+ b\n$$") == []


def test_no_inline_formula_is_broken_by_a_line_that_markdown_reads_as_a_list():
    broken = {name: hits for name, text in _markdown_sources().items()
              if (hits := _list_markers_inside_inline_math(text))}
    assert not broken, f"move the + or - to the end of the line before: {broken}"


# Characters of code the book's column shows at 1280 px: 77 in a code cell, 69 inside a
# solution's box. tests/test_browser.py checks in the browser that nothing scrolls sideways.
CODE_WIDTH = 77
SOLUTION_CODE_WIDTH = 69


def _code_blocks(cell) -> list[str]:
    """The code a reader sees in a cell: a code cell's source, or a Markdown cell's code fences
    (```python, ```text, ```{code-block} ...), not the fences of directives such as {solution}."""
    if cell.cell_type == "code":
        return [cell.source]
    return [body for _, body in _fenced_code(cell.source)]


def _fenced_code(markdown: str, directive: str = "") -> list[tuple[str, str]]:
    """(innermost enclosing directive, code) for each code fence of a Markdown text."""
    fences = re.findall(r"^[ \t]*(`{3,})([^\n`]*)\n(.*?)^[ \t]*\1[ \t]*$", markdown, flags=re.S | re.M)
    blocks = []
    for _, info, body in fences:
        info = info.strip()
        if info.startswith("{") and not info.startswith("{code"):
            blocks += _fenced_code(body, info.split("}")[0] + "}")  # code inside a directive
        else:
            blocks.append((directive, body))
    return blocks


def test_code_blocks_are_found_in_markdown_fences():
    cell = nbformat.v4.new_markdown_cell("text\n````{solution} ex\n" + "long prose " * 10
                                         + "\n```python\nx = 1\n```\n````\n```\ny\n```")
    assert _code_blocks(cell) == ["x = 1\n", "y\n"]
    assert _fenced_code(cell.source) == [("{solution}", "x = 1\n"), ("", "y\n")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_code_fits_the_page(path):
    """Code cells and the code in exercise solutions fit the column: nothing scrolls sideways
    at 1280 px, and printing cuts nothing."""
    long = []
    for cell in _nb(path).cells:
        blocks = [("", cell.source)] if cell.cell_type == "code" else _fenced_code(cell.source)
        for directive, block in blocks:
            width = CODE_WIDTH if directive in ("", "{code-cell}") else SOLUTION_CODE_WIDTH
            long += [f"{len(line)} > {width}: {line}" for line in block.splitlines() if len(line) > width]
    assert not long, f"{path.name}: {len(long)} code lines too wide for the column, e.g. {long[:3]}"


def test_coalesce_streams_merges_consecutive_prints():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1); print(2)")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n"),
                           nbformat.v4.new_output("stream", name="stdout", text="2\n"),
                           nbformat.v4.new_output("stream", name="stderr", text="w\n")]
    course.coalesce_streams(nb)
    assert [(o.name, o.text) for o in nb.cells[0].outputs] == [("stdout", "1\n2\n"), ("stderr", "w\n")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_streams_are_coalesced(path):
    for cell in _nb(path).cells:
        kinds = [(o.output_type, o.get("name")) for o in cell.get("outputs", [])]
        assert all(a != b or a[0] != "stream" for a, b in zip(kinds, kinds[1:])), (
            f"{path.name}: consecutive stream outputs; re-run `make execute`"
        )


def test_binder_installs_what_the_assignments_need():
    """Students on Binder run the assignments' checks: postBuild installs the `assign` extra's otter."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    post = (ROOT / "postBuild").read_text()
    for spec in extras["assign"]:
        assert f'"{spec}"' in post, f"postBuild does not install {spec}"


def test_sdist_holds_the_package_and_no_half_test_suite(tmp_path, monkeypatch):
    """The tests need the repository around them: the sdist ships the package alone."""
    import tarfile

    import setuptools
    import setuptools.build_meta
    from packaging.version import Version

    build_requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    needed = Requirement(next(r for r in build_requires if r.startswith("setuptools")))
    if Version(setuptools.__version__) not in needed.specifier:  # pip builds in isolation with it
        pytest.skip(f"building here needs {needed}, this environment has setuptools {setuptools.__version__}")
    monkeypatch.chdir(ROOT)
    name = setuptools.build_meta.build_sdist(str(tmp_path))
    with tarfile.open(tmp_path / name) as tar:
        files = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert "lstm_lab/__init__.py" in files and "lstm_lab/data/corpus.txt" in files
    assert {"README.md", "LICENSE", "pyproject.toml"} <= files
    assert not [f for f in files if f.startswith("tests/")], "the sdist ships tests without the repository"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_has_a_caption_a_label_and_alt_text(path):
    """MyST-NB reads cell metadata ``mystnb.figure`` (caption, name: a numbered, referable
    figure) and ``mystnb.image`` (alt: what a screen reader says instead of a file name)."""
    chapter = int(path.name[:2])
    for index, cell in enumerate(_nb(path).cells):
        if cell.cell_type != "code":
            continue
        images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        if not images:
            continue
        where = f"{path.name}, cell {index}"
        assert len(images) == 1, f"{where}: one figure per cell, so that each has its own caption"
        options = cell.metadata.get("mystnb", {})
        figure, image = options.get("figure", {}), options.get("image", {})
        assert re.fullmatch(rf"fig-ch{chapter}-[a-z0-9-]+", figure.get("name", "")), f"{where}: figure name"
        caption, alt = figure.get("caption", ""), image.get("alt", "")
        assert 20 <= len(caption) <= 400 and "\n" not in caption, f"{where}: caption {caption!r}"
        assert 30 <= len(alt) <= 500 and "\n" not in alt, f"{where}: alt text {alt!r}"
        assert not re.search(r"[$\\`*{}]", alt), f"{where}: alt text is read aloud, so plain text: {alt!r}"


def test_figure_names_are_unique_across_the_book():
    names = [c.metadata["mystnb"]["figure"]["name"] for p in NOTEBOOKS for c in _nb(p).cells
             if c.metadata.get("mystnb", {}).get("figure", {}).get("name")]
    assert len(names) == len(set(names)) >= 30


def test_every_labelled_equation_has_a_home_in_the_code():
    """Each label of the book is cited, in a comment, on a line of the function that computes it;
    lstm_lab/README.md lists them (``make sync`` writes it; test_sync_is_up_to_date checks it)."""
    homes = course.equation_homes()
    equations = course.book_equations()
    assert set(equations) == {label for labels in _equations().values() for label in labels if label}
    homeless = sorted(set(equations) - set(homes))
    assert not homeless, f"labels no function of lstm_lab cites in a comment: {homeless}"
    strays = sorted(set(homes) - set(equations))
    assert not strays, f"comments in lstm_lab cite labels the book does not have: {strays}"
    assert "**nowhere**" not in course.equation_map_text()


def test_the_course_map_names_the_chapters_that_teach_each_model():
    """Chapter 9's table gives, for each model, the chapters that teach it: the headings of one
    of them name the model, and the range is no wider than the book (chapters were renumbered
    twice; a stale number points at a chapter about something else)."""
    import json

    def headings(number: int) -> str:
        path = next((ROOT / "notebooks").glob(f"{number:02d}_*.ipynb"))
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        lines = [ln for c in cells if c["cell_type"] == "markdown" for ln in "".join(c["source"]).splitlines()]
        return " ".join(ln for ln in lines if ln.startswith("#")).lower()

    nb = json.loads(next((ROOT / "notebooks").glob("09_*.ipynb")).read_text(encoding="utf-8"))
    table = next("".join(c["source"]) for c in nb["cells"] if "## The course in one table" in "".join(c["source"]))
    rows = [ln.split("|")[1:3] for ln in table.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert len(rows) >= 8
    names = {"vanilla RNN": "rnn", "LSTM, GRU and variants": "lstm", "Transformer": "transformer",
             "time-invariant SSM": "time-invariant", "Mamba (selective SSM)": "mamba",
             "minGRU, minLSTM": "gated recurrence", "sLSTM": "xlstm", "mLSTM": "mlstm"}
    for model, chapters in rows:
        model, chapters = model.strip(), chapters.strip()
        first, _, last = chapters.partition("-")
        numbers = range(int(first), int(last or first) + 1)
        assert all(list((ROOT / "notebooks").glob(f"{n:02d}_*.ipynb")) for n in numbers), (model, chapters)
        assert any(names[model] in headings(n) for n in numbers), f"{model!r}: no heading of {chapters} names it"
