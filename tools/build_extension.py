#!/usr/bin/env python3
"""Build the Blender extension: one installable zip holding the add-on and a copy of the backend package.

    python tools/build_extension.py               # dist/t2vz-<version>.zip
    python tools/build_extension.py --dir OUT     # the same files, unpacked into the folder OUT (tests use this)

In the repository ``blender_addon/backend/t2vz_backend`` is a symlink to ``t2vz_backend/``; the package gets a real
copy there (symlinks are not portable in zips). ``install_deps.py`` and the ``requirements/`` it reads go to
``installer/``, so the add-on's Install Dependencies button works from an installed package. Tests, caches and
dot files stay out. The manifest is checked with the rules Blender's ``extension validate`` applies to it.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import shutil
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADDON = ROOT / "blender_addon"
BACKEND = ROOT / "t2vz_backend"
BUNDLED_BACKEND = Path("backend") / "t2vz_backend"  # where the backend goes inside the package
INSTALLER_FILES = ("install_deps.py", "requirements")  # repository paths copied into the package's installer/
ALWAYS_EXCLUDED = ("__pycache__", "*.pyc", "*.pyo", ".*", "tests", "test_*.py", "*.blend1")
ZIP_DATE = (2024, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same zip
TERSE_LIMIT = 64  # Blender's limit for the tagline and each permission reason
PERMISSIONS = {"files", "network", "clipboard", "camera", "microphone"}


class BuildError(Exception):
    """The manifest or the sources are not fit for a package; the message says what to fix."""


def _terse(label: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise BuildError(f"{label} must be a non-empty string")
    if len(value) > TERSE_LIMIT:
        raise BuildError(f"{label} is {len(value)} characters long; Blender allows {TERSE_LIMIT}")
    if not (value[-1].isalnum() or value[-1] in ")]}"):
        raise BuildError(f"{label} must not end with punctuation: {value!r}")


def read_manifest(path: Path = ADDON / "blender_manifest.toml") -> dict:
    """Parse and check ``blender_manifest.toml``; raises ``BuildError`` naming the field at fault."""
    try:
        manifest = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"cannot read {path}: {exc}") from exc
    for key in ("schema_version", "id", "version", "name", "tagline", "maintainer", "type", "blender_version_min",
                "license"):
        if key not in manifest:
            raise BuildError(f"the manifest has no {key!r}")
    if manifest["schema_version"] != "1.0.0":
        raise BuildError("schema_version must be \"1.0.0\"")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*[A-Za-z0-9]", manifest["id"]):
        raise BuildError(f"id {manifest['id']!r} must be a Python identifier not ending in '_'")
    if not re.fullmatch(r"\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?", manifest["version"]):
        raise BuildError(f"version {manifest['version']!r} is not semantic (MAJOR.MINOR.PATCH)")
    if manifest["type"] != "add-on":
        raise BuildError("type must be \"add-on\"")
    minimum = tuple(int(part) for part in manifest["blender_version_min"].split("."))
    if minimum < (4, 2, 0):
        raise BuildError("blender_version_min must be at least 4.2.0 (extensions need it)")
    _terse("tagline", manifest["tagline"])
    licenses = manifest["license"]
    if not licenses or not all(isinstance(x, str) and x.startswith("SPDX:") for x in licenses):
        raise BuildError("license must be a list of \"SPDX:...\" identifiers")
    for key, reason in manifest.get("permissions", {}).items():
        if key not in PERMISSIONS:
            raise BuildError(f"unknown permission {key!r}; use one of {sorted(PERMISSIONS)}")
        _terse(f"permission {key!r}", reason)
    return manifest


def _excluded(rel: Path, patterns: tuple[str, ...]) -> bool:
    """Whether ``rel`` (relative to the package) matches a ``paths_exclude_pattern`` or a built-in exclusion."""
    text = rel.as_posix()
    for pattern in patterns:
        anchored = pattern.startswith("/")
        bare = pattern.strip("/")
        if anchored:
            if text == bare or text.startswith(bare + "/"):
                return True
        elif any(fnmatch.fnmatch(part, bare) for part in rel.parts):
            return True
    return False


def _walk(source: Path, patterns: tuple[str, ...]) -> Iterator[Path]:
    """Files under ``source`` (following symlinks), relative to it, in a stable order, minus the excluded ones."""
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if _excluded(rel, patterns) or not path.is_file():
            continue
        yield rel


def package_files(manifest: dict) -> dict[Path, Path]:
    """Every file of the package: path inside the package -> source file (symlinks resolved to their target)."""
    patterns = tuple(manifest.get("build", {}).get("paths_exclude_pattern", ())) + ALWAYS_EXCLUDED
    files: dict[Path, Path] = {}
    for rel in _walk(ADDON, patterns):
        if rel.parts[:2] == BUNDLED_BACKEND.parts:
            continue  # the symlinked backend is copied from its source below
        files[rel] = (ADDON / rel).resolve()
    if not BACKEND.is_dir():
        raise BuildError(f"the backend package {BACKEND} is missing")
    for rel in _walk(BACKEND, ALWAYS_EXCLUDED):
        files[BUNDLED_BACKEND / rel] = (BACKEND / rel).resolve()
    for name in INSTALLER_FILES:  # install_deps.py reads the requirements/ folder next to itself
        source = ROOT / name
        if not source.exists():
            raise BuildError(f"{source} is missing; the add-on's Install Dependencies button needs it")
        found = [Path()] if source.is_file() else list(_walk(source, ALWAYS_EXCLUDED))
        for rel in found:
            files[Path("installer") / name / rel] = (source / rel).resolve()
    for required in (Path("__init__.py"), Path("blender_manifest.toml"), BUNDLED_BACKEND / "protocol.py"):
        if required not in files:
            raise BuildError(f"the package would lack {required}")
    return files


def write_dir(files: dict[Path, Path], out: Path) -> Path:
    """Copy the package into ``out`` (replaced if it exists): regular files only, no symlinks."""
    if out.exists():
        shutil.rmtree(out)
    for rel, source in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)  # copies the content, never the link
    return out


def write_zip(files: dict[Path, Path], out: Path) -> Path:
    """Write the package as a zip with the files at its root, the layout Blender installs from."""
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_suffix(".zip.part")
    with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for rel, source in sorted(files.items()):
            info = zipfile.ZipInfo(rel.as_posix(), date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16  # a plain file, whatever the source was
            archive.writestr(info, source.read_bytes())
    temp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, metavar="OUT", help="write the unpacked package into OUT instead")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", metavar="DIR", help="folder for the zip")
    args = parser.parse_args(argv)
    try:
        manifest = read_manifest()
        files = package_files(manifest)
    except BuildError as exc:
        print(f"build_extension: error: {exc}", file=sys.stderr)
        return 2
    if args.dir:
        path = write_dir(files, args.dir.resolve())
    else:
        path = write_zip(files, args.out.resolve() / f"{manifest['id']}-{manifest['version']}.zip")
    print(f"build_extension: {len(files)} files -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
