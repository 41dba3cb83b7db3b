"""Every design reference points at something that exists: a ``docs/*.md`` file and, when cited, its ``§N`` section.

Code and docs cite the project's own design documents as ``docs/method.md §4.3`` (several sections: ``§2, §4.5``;
a range: ``§2.3-§2.5``). The documents number their headings ``## §N Title`` (or ``## N. Title``). This test reads
every source and documentation file of the repository and fails for a cited file that is not there, a cited section
that its file does not have, a ``§`` in code that names no file, and a repository path in the docs (```tests/x.py```)
that does not exist. It keeps the references true when documents or sections are renamed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", "build", "dist", "demo_out", "__pycache__", ".pytest_cache", ".ruff_cache"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".sh"}
TOP_LEVEL = ("t2vz_backend/", "blender_addon/", "tests/", "tools/", "bench/", "docs/", "requirements/", ".ci/")

SECTION = r"§\d+(?:\.\d+)*"
# A cited document, then optionally its sections: "docs/method.md §2, §4.5", "docs/blender.md §4", "§2.3-§2.5".
SEPARATOR = r"(?:\s*[,–-]\s*|\s+(?:and|or)\s+|\s+)"
REFERENCE = re.compile(rf"(?P<file>(?:\.\./)*(?:[\w-]+/)*[\w-]+\.md)(?P<sections>(?:{SEPARATOR}{SECTION})*)")
WORDED_SECTION = re.compile(r"[\w-]+\.md,?\s+sections?\s+\d")
HEADING = re.compile(r"^#+\s+§?(\d+(?:\.\d+)*)[.\s]", re.MULTILINE)
BACKTICK_PATH = re.compile(r"`([^`\s]+)`")


def repository_files() -> list[Path]:
    """Source and documentation files, without environments, build output and the add-on's link to the backend (and
    this file, whose examples are broken on purpose)."""
    found = []
    for folder, dirs, files in os.walk(ROOT):  # does not follow symlinks: blender_addon/backend/t2vz_backend
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".venv") and not d.endswith(".egg-info")]
        found += [Path(folder) / name for name in files if Path(name).suffix in TEXT_SUFFIXES]
    return sorted(path for path in found if path != Path(__file__).resolve())


def sections_of(document: Path) -> set[str]:
    return set(HEADING.findall(document.read_text(encoding="utf-8")))


def cited_sections(text: str) -> list[str]:
    return [number[1:] for number in re.findall(SECTION, text)]


def resolve(citing: Path, name: str) -> Path | None:
    """The cited file: relative to the citing file's folder (Markdown links), else to the repository root."""
    for base in (citing.parent, ROOT):
        candidate = (base / name).resolve()
        if candidate.is_file():
            return candidate
    return None


def is_design_reference(match: re.Match[str]) -> bool:
    """A ``docs/`` path, a Markdown link target, or any ``.md`` followed by a section (other projects' files, such as
    "pytorch's RELEASE.md", are neither)."""
    name = match.group("file")
    linked = match.string[max(0, match.start() - 2):match.start()] == "]("
    return "docs/" in name or bool(match.group("sections")) or linked


def problems_in(path: Path, text: str | None = None) -> list[str]:
    """What is wrong with the references in ``path`` (or in ``text``, read as if it were that file)."""
    text = path.read_text(encoding="utf-8", errors="replace") if text is None else text
    where = path.relative_to(ROOT)
    out = []
    cited_spans = []
    for match in REFERENCE.finditer(text):
        if not is_design_reference(match):
            continue
        line = text.count("\n", 0, match.start()) + 1
        target = resolve(path, match.group("file"))
        cited_spans.append(match.span())
        if target is None:
            out.append(f"{where}:{line}: {match.group('file')} does not exist in the repository")
            continue
        missing = [n for n in cited_sections(match.group("sections")) if n not in sections_of(target)]
        if missing:
            out.append(f"{where}:{line}: {match.group('file')} has no section " + ", ".join(f"§{n}" for n in missing))
    for match in WORDED_SECTION.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        out.append(f"{where}:{line}: write sections as §N ({match.group(0)!r})")
    is_doc = path.suffix == ".md"
    own = sections_of(path) if is_doc else set()
    for match in re.finditer(SECTION, text):
        if any(start <= match.start() < end for start, end in cited_spans):
            continue
        line = text.count("\n", 0, match.start()) + 1
        if not is_doc:
            out.append(f"{where}:{line}: {match.group(0)} names no document (write docs/<name>.md {match.group(0)})")
        elif match.group(0)[1:] not in own:
            out.append(f"{where}:{line}: this document has no section {match.group(0)}")
    if is_doc:
        for match in BACKTICK_PATH.finditer(text):
            name = match.group(1).split("::")[0].rstrip(".,:;")
            if not name.startswith(TOP_LEVEL) or "<" in name or "{" in name:
                continue
            if not (list(ROOT.glob(name)) if "*" in name else (ROOT / name).exists()):
                line = text.count("\n", 0, match.start()) + 1
                out.append(f"{where}:{line}: `{name}` does not exist in the repository")
    return out


def test_every_design_reference_exists() -> None:
    problems = [problem for path in repository_files() for problem in problems_in(path)]
    assert not problems, "\n".join(problems)


def test_the_design_documents_exist_and_number_their_sections() -> None:
    for name in ("docs/architecture.md", "docs/method.md", "docs/blender.md"):
        assert len(sections_of(ROOT / name)) >= 4, f"{name} has no numbered sections"


@pytest.mark.parametrize(("text", "expected"), [
    ("see docs/method.md §2.5", []),
    ("see docs/method.md §2, §99", ["no section §99"]),
    ("see docs/method.md §2.3-§77.1", ["no section §77.1"]),
    ("see docs/nowhere.md", ["does not exist"]),
    ("see design.md §2", ["does not exist"]),  # a bare name is looked up beside the citing file, then at the root
    ("the step-major loop (§5)", ["names no document"]),
    ("docs/blender.md section 4", ["write sections as §N"]),
    ("pytorch's RELEASE.md lists the builds", []),
])
def test_the_checker_finds_broken_references(text: str, expected: list[str]) -> None:
    found = problems_in(ROOT / "t2vz_backend" / "probe.py", f'"""{text}"""\n')
    assert len(found) == len(expected) and all(e in f for e, f in zip(expected, found)), found
