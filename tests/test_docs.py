"""The documentation: every file it points at exists, it cites only what is in the repository, the
index reaches every page, and the code on the pages runs.

References checked, in the package, the tests, the benchmarks, the notebooks' cells, the READMEs,
setup.cfg, .ci/run and docs/:
- Markdown links ``[text](target)`` with a relative target, resolved from the file's folder;
- every mention of a ``*.md`` file, resolved from the file's folder, docs/ or the repository root;
- every path that starts with a top-level folder of the repository (``npflows/``, ``tests/``,
  ``docs/``, ...), resolved from the root.
Paths with wildcards or placeholders (``test_*.py``, ``docs/<page>.md``) are patterns, not
references, and are skipped.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TOP_FOLDERS = ("npflows", "tests", "notebooks", "benchmarks", "docs", ".ci")
# The team's working notes live outside the repository; users never see them, so nothing may cite
# them. Spelled in pieces so that this file does not cite them either.
TEAM_NOTES = tuple(name + ".md" for name in ("MATH", "DESIGN", "STYLE", "PEERS"))
TEAM_FOLDER = re.compile(r"\.\./shared\b|" + re.escape("/".join(("", "work", "shared"))))

MARKDOWN_LINK = re.compile(r"\]\(([^()\s]+)\)")
# A mention starts where no word, path or URL does (so "https://host/x.md" is not a mention).
MD_MENTION = re.compile(r"(?<![\w./:-])[\w./-]*\w\.md\b")
PATH_MENTION = re.compile(
    r"(?<![\w./:-])(?:\.\./)*(?:" + "|".join(map(re.escape, TOP_FOLDERS)) + r")/[\w./*<>{}-]*"
)
PATTERN_CHARS = set("*<>{}")
BUILD_OUTPUT = "docs/_build"  # named by the build instructions, made by the build


def product_files() -> list[Path]:
    """Every file whose text users read: code, tests, benchmarks, notebooks, READMEs, docs."""
    files = [ROOT / "README.md", ROOT / "setup.cfg", ROOT / ".ci" / "run"]
    for folder, patterns in (
        ("npflows", ("*.py",)),
        ("tests", ("*.py",)),
        ("benchmarks", ("*.py", "*.md")),
        ("notebooks", ("*.ipynb", "*.md")),
        ("docs", ("*.md", "*.py", "*.rst")),
    ):
        for pattern in patterns:
            files += [
                p for p in (ROOT / folder).rglob(pattern) if not _ignored(p.relative_to(ROOT))
            ]
    return sorted(set(files))


def _ignored(relative: Path) -> bool:
    """Build output, generated API stubs and checkpoints are not sources."""
    parts = relative.parts
    return "_build" in parts or "generated" in parts or ".ipynb_checkpoints" in parts


def text_of(path: Path, markdown_only: bool = False) -> str:
    """The file's text; for a notebook, only its cells' sources (outputs are not references).

    ``markdown_only``: only what is Markdown (a .md file, a notebook's Markdown cells), where
    ``[text](target)`` is a link rather than, say, an index followed by a call.
    """
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        kept = [c for c in cells if c["cell_type"] == "markdown" or not markdown_only]
        return "\n".join("".join(cell["source"]) for cell in kept)
    if markdown_only and path.suffix != ".md":
        return ""
    return path.read_text(encoding="utf-8")


def _clean(target: str) -> str:
    """A mention without its anchor, query or the punctuation of the sentence around it."""
    return target.split("#")[0].split("?")[0].rstrip(".,;:)`'\"")


def _is_pattern(target: str) -> bool:
    return bool(PATTERN_CHARS & set(target))


def unresolved_references(path: Path) -> list[str]:
    """The references in ``path`` that name no existing file or folder of the repository."""
    text, here = text_of(path), path.parent
    missing = []
    for match in MARKDOWN_LINK.finditer(text_of(path, markdown_only=True)):
        target = _clean(match.group(1))
        if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target) or _is_pattern(target):
            continue  # an anchor on the same page, a URL (http:, mailto:), or a pattern
        if not (here / target).exists():
            missing.append(f"link ({match.group(1)})")
    for match in MD_MENTION.finditer(text):
        target = _clean(match.group(0))
        if _is_pattern(target):
            continue
        if not any((base / target).exists() for base in (here, DOCS, ROOT)):
            missing.append(f"file {target}")
    for match in PATH_MENTION.finditer(text):
        target = _clean(match.group(0))
        if _is_pattern(target) or target.startswith(BUILD_OUTPUT):
            continue
        if not ((ROOT / target).exists() or (here / target).exists()):
            missing.append(f"path {target}")
    return list(dict.fromkeys(missing))  # each once, in order


FILES = product_files()
IDS = [str(p.relative_to(ROOT)) for p in FILES]
THIS_FILE = Path(__file__).resolve()


@pytest.mark.parametrize(
    "path",
    [p for p in FILES if p != THIS_FILE],
    ids=[i for p, i in zip(FILES, IDS, strict=True) if p != THIS_FILE],
)
def test_every_reference_resolves(path):
    """(This file is left out: its self-test holds broken references on purpose.)"""
    missing = unresolved_references(path)
    assert not missing, f"{path.relative_to(ROOT)} points at what does not exist: {missing}"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_nothing_cites_the_team_notes(path):
    text = text_of(path)
    cited = [name for name in TEAM_NOTES if re.search(r"\b" + re.escape(name), text)]
    cited += TEAM_FOLDER.findall(text)
    assert not cited, (
        f"{path.relative_to(ROOT)} cites {cited}, which users never see; point at docs/ instead"
    )


def test_the_reference_check_finds_a_broken_reference(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "See [a page](missing_page.md), tests/no_such_test.py, npflows/layer.py, "
        "[an anchor](#top), [a site](https://example.org/x.md) and docs/<page>.md.\n",
        encoding="utf-8",
    )
    assert unresolved_references(page) == [
        "link (missing_page.md)",
        "file missing_page.md",
        "path tests/no_such_test.py",
    ]


def test_the_index_links_every_page():
    linked = {_clean(t) for t in MARKDOWN_LINK.findall((DOCS / "index.md").read_text("utf-8"))}
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert pages <= linked, f"docs/index.md does not link {sorted(pages - linked)}"


def test_the_sphinx_site_lists_every_page():
    contents = (DOCS / "contents.rst").read_text(encoding="utf-8").split()
    pages = {p.stem for p in DOCS.glob("*.md")}
    assert pages <= set(contents), (
        f"docs/contents.rst does not list {sorted(pages - set(contents))}"
    )


# -- the code on the pages runs -------------------------------------------------------------------
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
PAGES_WITH_EXAMPLES = ["contract.md", "linear.md"]


def run_blocks(source: str, name: str) -> dict:
    namespace: dict = {"__name__": f"docs_{name}"}
    exec(compile(source, name, "exec"), namespace)  # the page's own code, nothing else
    return namespace


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES)
def test_the_examples_on_the_page_run(page, tmp_path, monkeypatch):
    blocks = PYTHON_BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))
    assert blocks, f"docs/{page} has no python example"
    monkeypatch.chdir(tmp_path)  # whatever an example writes stays out of the repository
    run_blocks("\n".join(blocks), page)


def test_the_contract_example_checks_catch_a_wrong_pullback(tmp_path, monkeypatch):
    """The contract page's checks have teeth: drop one term of the example's pullback and they fail."""
    from npflows.testing import check_layer

    blocks = PYTHON_BLOCK.findall((DOCS / "contract.md").read_text(encoding="utf-8"))
    layer_code = blocks[0]
    assert layer_code.count("(1.0 + a * tanh)") == 1
    namespace = run_blocks(layer_code.replace("(1.0 + a * tanh)", "(a * tanh)"), "contract.md")
    rng = np.random.default_rng(0)
    layer = namespace["SinhScale"](3)
    layer.params["log_scale"][:] = rng.normal(scale=0.5, size=3)
    with pytest.raises(AssertionError, match="vjp"):
        check_layer(layer, rng.normal(size=(5, 3)))


# -- the docstring reader of the API reference ----------------------------------------------------
sys.path.insert(0, str(DOCS))
from plain_docstrings import literal_equations  # noqa: E402


def test_docstring_equations_become_literal_blocks():
    lines = [
        "The map, with b = ⌊K h⌋:",
        "    f(h) = Σ_{k<b} φ_k,  log|det| = Σ s",
        "    f′(h) = K φ_b",
        "Then more text, |x| and ``|literal|`` and mean_.",
        "",
        "Args:",
        "    dim: D.",
        "        continued.",
    ]
    assert literal_equations(lines) == [
        "The map, with b = ⌊K h⌋: ::",
        "",
        "    f(h) = Σ_{k<b} φ_k,  log|det| = Σ s",
        "    f′(h) = K φ_b",
        "",
        r"Then more text, \|x\| and ``|literal|`` and mean\_.",
        "",
        "Args:",
        "    dim: D.",
        "        continued.",
    ]


def test_docstring_lists_get_blank_lines_and_continuations_stay():
    lines = ["Every target has", "- ``dim``;", "- a value", "  continued;", "Shapes: (N, 2)."]
    assert literal_equations(lines) == [
        "Every target has",
        "",
        "- ``dim``;",
        "- a value",
        "  continued;",
        "",
        "Shapes: (N, 2).",
    ]


def test_references_resolve_through_the_names_users_import():
    from public_names import _defined_at

    assert _defined_at("npflows.fit", None) == "npflows.train.fit"
    assert _defined_at("npflows.layers.MAF", None) == "npflows.layers.autoregressive.MAF"
    assert _defined_at("Flow", "npflows.flows") == "npflows.flow.Flow"
    assert _defined_at("npflows.no_such_name", None) is None
