"""tools/build_extension.py: one zip with the add-on and a real copy of the backend, and a checked manifest."""

from __future__ import annotations

import importlib.util
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_extension  # noqa: E402


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    assert build_extension.main(["--out", str(out)]) == 0
    manifest = build_extension.read_manifest()
    return out / f"t2vz-{manifest['version']}.zip"


def test_zip_holds_the_addon_the_backend_copy_and_the_installer(built_zip):
    assert built_zip.name == "t2vz-0.1.0.zip"
    with zipfile.ZipFile(built_zip) as archive:
        names = set(archive.namelist())
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        for info in archive.infolist():
            assert not stat.S_ISLNK(info.external_attr >> 16), f"{info.filename} is a symlink"
        protocol = archive.read("backend/t2vz_backend/protocol.py")
    assert manifest["id"] == "t2vz" and manifest["blender_version_min"] == "4.2.0"
    assert protocol == (ROOT / "t2vz_backend" / "protocol.py").read_bytes()
    for name in ("__init__.py", "backend/t2vz_backend/service/client.py", "installer/install_deps.py",
                 "installer/requirements/backend.txt", "core/runner.py", "core/compat.py"):
        assert name in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n or n.startswith(".")]


def test_unpacked_build_is_a_plain_folder(tmp_path):
    out = tmp_path / "t2vz"
    assert build_extension.main(["--dir", str(out)]) == 0
    backend = out / "backend" / "t2vz_backend"
    assert backend.is_dir() and not backend.is_symlink() and (backend / "protocol.py").is_file()
    assert not [p for p in out.rglob("*") if p.is_symlink()]


def test_manifest_rules(tmp_path):
    manifest = build_extension.read_manifest()
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"] and manifest["tags"] == ["Sequencer"]
    assert set(manifest["permissions"]) == {"files", "network"}
    bad = (ROOT / "blender_addon" / "blender_manifest.toml").read_text().replace(
        f'tagline = "{manifest["tagline"]}"', 'tagline = "Ends with a period."')
    (tmp_path / "m.toml").write_text(bad)
    with pytest.raises(build_extension.BuildError, match="punctuation"):
        build_extension.read_manifest(tmp_path / "m.toml")


def test_blenders_own_validator_accepts_the_zip(built_zip):
    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        pytest.skip("needs the bpy module, which carries Blender's extension tool")
    tools = list(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not tools:
        pytest.skip("this bpy build has no blender_ext.py")
    result = subprocess.run([sys.executable, str(tools[0]), "validate", str(built_zip)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
