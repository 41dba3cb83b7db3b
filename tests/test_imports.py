"""Every import of the project's own modules resolves, including imports inside functions.

Moving or renaming a module must fail here, in CI, and not at a user's desk the first time a rarely used code path
imports it lazily. The check reads the source (it imports nothing), so it covers modules that need bpy, torch or a
GPU alike: each ``import``/``from ... import`` that names a project module must point at a file that exists, and
each imported name must be a submodule or a name that module defines at its top level.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Where absolute imports are looked up: the repository (packages) and the script folders that import each other.
SEARCH_ROOTS = (ROOT, ROOT / "tests", ROOT / "bench", ROOT / "tools")
SKIP = ("blender_addon/backend/t2vz_backend",)  # the repository's symlink to t2vz_backend/: checked as itself
ALIASES = {"blender_addon.backend.t2vz_backend": "t2vz_backend"}  # what that symlink stands for


def project_files(root: Path = ROOT) -> list[Path]:
    out = []
    for folder in ("t2vz_backend", "blender_addon", "tests", "bench", "tools", "integrations"):
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if "__pycache__" in rel or any(rel.startswith(s + "/") for s in SKIP):
                continue
            out.append(path)
    out.extend(p for p in (root / "install_deps.py",) if p.exists())
    return out


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    """(dotted name, is a package) of ``path``: script folders (tests/, bench/, tools/) are their own roots."""
    base = root
    for folder in SEARCH_ROOTS[1:]:
        if path.parent == root / folder.relative_to(ROOT):
            base = path.parent
    parts = list(path.relative_to(base).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    return ".".join(parts), is_pkg


def find_module(dotted: str, root: Path) -> Path | None:
    """The file of project module ``dotted`` (a package's ``__init__.py``), or None."""
    for alias, target in ALIASES.items():
        if dotted == alias or dotted.startswith(alias + "."):
            dotted = target + dotted[len(alias):]
    rel = Path(*dotted.split("."))
    for base in SEARCH_ROOTS:
        base = root / base.relative_to(ROOT)
        for candidate in (base / rel.with_suffix(".py"), base / rel / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def is_project(dotted: str, root: Path) -> bool:
    top = dotted.split(".")[0]
    return find_module(top, root) is not None


def top_level_names(path: Path) -> set[str]:
    """Names a module defines at its top level (also inside module-level if/try/with blocks)."""
    names: set[str] = set()

    def targets(node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                targets(elt)

    def walk(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    targets(target)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets(node.target)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    names.add((alias.asname or alias.name).split(".")[0])
            elif isinstance(node, ast.If):
                walk(node.body)
                walk(node.orelse)
            elif isinstance(node, ast.Try):
                walk(node.body)
                walk(node.orelse)
                walk(node.finalbody)
                for handler in node.handlers:
                    walk(handler.body)
            elif isinstance(node, ast.With):
                walk(node.body)

    walk(ast.parse(path.read_text(encoding="utf-8")).body)
    return names


def broken_imports(root: Path = ROOT) -> list[str]:
    """Every project import under ``root`` that does not resolve, as 'file:line: what'."""
    problems = []
    for path in project_files(root):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        name, is_pkg = module_name(path, root)
        where = f"{path.relative_to(root).as_posix()}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if is_project(alias.name, root) and find_module(alias.name, root) is None:
                        problems.append(f"{where}:{node.lineno}: import {alias.name}: no such module")
                continue
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                package = name.split(".") if is_pkg else name.split(".")[:-1]
                if node.level - 1 > len(package):
                    problems.append(f"{where}:{node.lineno}: relative import goes above the top package")
                    continue
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
                if not is_project(base, root):
                    continue  # a third-party or standard-library module
            module_file = find_module(base, root)
            if module_file is None:
                problems.append(f"{where}:{node.lineno}: from {'.' * node.level}{node.module or ''}: "
                                f"no module {base}")
                continue
            defined = top_level_names(module_file)
            for alias in node.names:
                if alias.name == "*" or alias.name in defined or find_module(f"{base}.{alias.name}", root):
                    continue
                problems.append(f"{where}:{node.lineno}: from {'.' * node.level}{node.module or ''} import "
                                f"{alias.name}: {base} has no such name or submodule")
    return problems


def test_every_project_import_resolves():
    assert broken_imports() == []


def test_the_check_finds_a_broken_import(tmp_path):
    """A renamed module, a missing name and a lazy import inside a function are all reported."""
    package = tmp_path / "t2vz_backend"
    (package / "service").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "service" / "__init__.py").write_text("")
    (package / "protocol.py").write_text("PROTOCOL_VERSION = 1\n")
    (package / "service" / "jobs.py").write_text(
        "from ..protocol import PROTOCOL_VERSION\n"
        "from ..protocol import NO_SUCH_NAME\n"
        "def f():\n"
        "    from .loading import ModelCache\n"
        "    from ..sampler import chunks\n")
    for folder in ("blender_addon", "tests", "bench", "tools"):
        (tmp_path / folder).mkdir()
    problems = broken_imports(tmp_path)
    assert len(problems) == 3, problems
    assert any("NO_SUCH_NAME" in p for p in problems)
    assert any("no module t2vz_backend.service.loading" in p for p in problems)
    assert any("no module t2vz_backend.sampler" in p for p in problems)
