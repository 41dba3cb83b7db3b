"""Tests of install_deps.py: plans for faked machines, detection with faked probes, the runner on harmless commands.

Nothing here installs a package or reaches the network: plans are only built and printed, and the runner only runs
``python -c`` one-liners.
"""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "install_deps.py"
_spec = importlib.util.spec_from_file_location("install_deps", SCRIPT)
assert _spec is not None and _spec.loader is not None
deps = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("install_deps", deps)
_spec.loader.exec_module(deps)

BACKEND_PACKAGES = (
    "diffusers", "transformers", "accelerate", "safetensors", "peft", "controlnet-aux", "opencv-python-headless",
    "pillow", "numpy", "av", "huggingface_hub", "matplotlib", "openexr",
)


def fake_probes(system: str = "Linux", arch: str = "x86_64", tools: tuple[str, ...] = (),
                libraries: tuple[str, ...] = (), paths: tuple[str, ...] = (),
                python: tuple[int, int] = (3, 11)) -> deps.Probes:
    """Probes that see only the given tools on PATH, libraries, existing paths, OS, CPU and Python version."""
    return deps.Probes(
        which=lambda name: f"/usr/bin/{name}" if name in tools else None,
        find_library=lambda name: f"lib{name}.so" if name in libraries else None,
        exists=lambda path: path in paths,
        system=lambda: system,
        machine=lambda: arch,
        python_version=lambda _python: python,
        glob=lambda _pattern: [],
        home=lambda: Path("/home/user"),
    )


def machine(system: str = "Linux", arch: str = "x86_64", nvidia: bool = False, rocm: bool = False) -> deps.Machine:
    return deps.Machine(system=system, arch=arch, nvidia=nvidia, rocm=rocm)


def pip_steps(plan: deps.Plan) -> list[tuple[str, ...]]:
    """The argv of every pip call in the plan."""
    return [step.argv for step in plan.steps if step.argv[1:4] == ("-m", "pip", "install")]


def user_plan(flavour: str, system: str, arch: str = "x86_64", venv_exists: bool = False,
              **options: object) -> deps.Plan:
    facts = machine(system, arch)
    torch = deps.choose_torch(flavour, facts, options.pop("torch_index", None))  # type: ignore[arg-type]
    opts = deps.Options(python="/usr/bin/python3.11", **options)  # type: ignore[arg-type]
    return deps.user_plan(opts, facts, torch, Path("/data/t2vz"), venv_exists)


# --- auto-detection ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("probes", "expected"), [
    (fake_probes(tools=("nvidia-smi",)), "cuda"),
    (fake_probes("Windows", "AMD64", tools=("nvidia-smi",)), "cuda"),
    (fake_probes(libraries=("cuda",)), "cuda"),
    (fake_probes(paths=("/usr/lib/wsl/lib/libcuda.so.1",)), "cuda"),
    (fake_probes(tools=("rocminfo",)), "rocm"),
    (fake_probes(paths=("/opt/rocm",)), "rocm"),
    (fake_probes(tools=("nvidia-smi", "rocminfo")), "cuda"),
    (fake_probes("Darwin", "arm64"), "mps"),
    (fake_probes("Darwin", "x86_64"), "cpu"),
    (fake_probes(), "cpu"),
    (fake_probes("Windows", "AMD64"), "cpu"),
    (fake_probes("Windows", "AMD64", tools=("rocminfo",)), "cpu"),  # no ROCm torch for Windows
], ids=["nvidia-smi", "windows-nvidia", "libcuda", "wsl-libcuda", "rocminfo", "opt-rocm", "both", "mac-arm",
        "mac-intel", "nothing", "windows-nothing", "windows-rocminfo"])
def test_detect_flavour_from_probes(probes: deps.Probes, expected: str) -> None:
    assert deps.detect_flavour(deps.probe_machine(probes)) == expected


def test_architectures_are_normalised() -> None:
    assert deps.probe_machine(fake_probes("Windows", "AMD64")).arch == "x86_64"
    assert deps.probe_machine(fake_probes("Linux", "aarch64")).arch == "arm64"
    assert deps.probe_machine(fake_probes("Darwin", "arm64")).arch == "arm64"


# --- user mode: one plan per torch flavour ------------------------------------------------------------------------


@pytest.mark.parametrize(("flavour", "system", "arch", "index", "label"), [
    ("cuda", "Linux", "x86_64", None, ""),
    ("cuda", "Windows", "x86_64", "https://download.pytorch.org/whl/cu126", "cu126"),
    ("rocm", "Linux", "x86_64", "https://download.pytorch.org/whl/rocm7.2", "rocm7.2"),
    ("mps", "Darwin", "arm64", None, ""),
    ("cpu", "Linux", "x86_64", "https://download.pytorch.org/whl/cpu", "cpu"),
    ("cpu", "Windows", "x86_64", "https://download.pytorch.org/whl/cpu", "cpu"),
    ("cpu", "Darwin", "arm64", None, ""),
])
def test_user_plan_per_flavour(flavour: str, system: str, arch: str, index: str | None, label: str) -> None:
    plan = user_plan(flavour, system, arch)
    create, install, check = plan.steps
    suffix = f"+{label}" if label else ""

    venv = Path("/data/t2vz/venv")
    assert create.argv == ("/usr/bin/python3.11", "-m", "venv", str(venv))
    expected_python = venv / "Scripts" / "python.exe" if system == "Windows" else venv / "bin" / "python"
    assert plan.python == expected_python
    assert install.argv[:4] == (str(expected_python), "-m", "pip", "install")
    assert f"torch==2.13.0{suffix}" in install.argv
    assert f"torchvision==0.28.0{suffix}" in install.argv
    if index is None:
        assert not any("index" in arg for arg in install.argv)
    else:
        assert install.argv[install.argv.index("--extra-index-url") + 1] == index
    names = {deps.canonical_name(name) for name in deps.project_names(install.argv[4:])}
    assert {deps.canonical_name(name) for name in BACKEND_PACKAGES} <= names
    assert check.report and check.argv[0] == str(expected_python)
    assert plan.markers == (venv / "t2vz-env.json", Path("/data/t2vz/t2vz-env.json"))
    assert plan.log == venv / "t2vz-install.log"


@pytest.mark.parametrize(("flavour", "system", "arch"), [
    ("rocm", "Windows", "x86_64"),
    ("rocm", "Darwin", "arm64"),
    ("mps", "Linux", "x86_64"),
    ("cuda", "Darwin", "arm64"),
    ("cpu", "Darwin", "x86_64"),  # no torch 2.13 wheels for Intel Macs at all
    ("auto", "Darwin", "x86_64"),
])
def test_impossible_builds_are_refused(flavour: str, system: str, arch: str) -> None:
    with pytest.raises(deps.InstallError, match="torch|Intel"):
        deps.choose_torch(flavour, machine(system, arch))


def test_auto_uses_detection() -> None:
    assert deps.choose_torch("auto", machine(nvidia=True)).flavour == "cuda"
    assert deps.choose_torch("auto", machine("Darwin", "arm64")).flavour == "mps"


def test_torch_index_override_takes_the_label_from_the_url() -> None:
    plan = user_plan("cuda", "Windows", torch_index="https://download.pytorch.org/whl/cu130")
    install = plan.steps[1].argv
    assert "torch==2.13.0+cu130" in install and "torchvision==0.28.0+cu130" in install
    assert install[install.index("--extra-index-url") + 1] == "https://download.pytorch.org/whl/cu130"
    assert deps.label_from_index("https://mirror.example/torch/simple") == ""


def test_existing_venv_is_not_recreated() -> None:
    plan = user_plan("cpu", "Linux", venv_exists=True)
    assert [step.title for step in plan.steps] == ["Install torch and the backend packages", "Check the environment"]
    assert not any("venv" in step.argv[1:3] for step in plan.steps)


def test_custom_venv_location() -> None:
    plan = user_plan("cpu", "Linux", venv=Path("/studio/t2vz-env"))
    assert plan.steps[0].argv[-1] == "/studio/t2vz-env"
    assert plan.python == Path("/studio/t2vz-env/bin/python")
    assert plan.markers[0] == Path("/studio/t2vz-env/t2vz-env.json")


@pytest.mark.parametrize(("system", "environ", "expected"), [
    ("Linux", {}, "/home/u/.local/share/t2vz"),
    ("Linux", {"XDG_DATA_HOME": "/xdg"}, "/xdg/t2vz"),
    ("Darwin", {}, "/home/u/Library/Application Support/t2vz"),
    ("Windows", {"LOCALAPPDATA": "/appdata/local"}, "/appdata/local/t2vz"),
    ("Windows", {}, "/home/u/AppData/Local/t2vz"),
])
def test_user_data_dir(system: str, environ: dict[str, str], expected: str) -> None:
    assert deps.user_data_dir(system, environ, Path("/home/u")) == Path(expected)


# --- --target (Blender's own Python) ------------------------------------------------------------------------------


def test_target_mode_uses_pip_target_and_no_venv() -> None:
    plan = user_plan("cuda", "Windows", target=Path("/blender/t2vz-site"))
    install, check = plan.steps
    assert install.argv[:4] == ("/usr/bin/python3.11", "-m", "pip", "install")
    assert install.argv[install.argv.index("--target") + 1] == "/blender/t2vz-site"
    # pip --target cannot see earlier installs, so torch goes in the same call as everything that depends on it.
    assert "--upgrade" in install.argv and "torch==2.13.0+cu126" in install.argv and "diffusers==0.42.1" in install.argv
    assert dict(check.env) == {"PYTHONPATH": "/blender/t2vz-site", "PYTHONNOUSERSITE": "1"}
    assert plan.python == Path("/usr/bin/python3.11") and plan.mode == "target"
    assert deps.marker_content(plan, {})["env"] == {"PYTHONPATH": "/blender/t2vz-site", "PYTHONNOUSERSITE": "1"}


# --- --dev --------------------------------------------------------------------------------------------------------


def dev_plan(venv_exists: bool = True, **options: object) -> deps.Plan:
    return deps.dev_plan(deps.Options(dev=True, **options), "Linux", venv_exists)  # type: ignore[arg-type]


def test_dev_plan_holds_torch_on_every_pip_call() -> None:
    plan = dev_plan(venv_exists=False)
    assert plan.steps[0].argv[-1] == str(ROOT / ".venv")
    calls = pip_steps(plan)
    assert calls
    for argv in calls:
        assert argv[0] == str(ROOT / ".venv" / "bin" / "python")
        assert argv[argv.index("-c") + 1] == str(ROOT / "requirements" / "constraints-dev.txt")
    constraints = deps.read_requirements(deps.DEV_CONSTRAINTS)
    assert "torch==2.13.0" in constraints and "numpy<2" in constraints


def test_dev_plan_packages() -> None:
    plan = dev_plan()
    assert [step.title for step in plan.steps] == ["Install the development packages", "Check the environment"]
    (install,) = pip_steps(plan)
    assert "bpy==4.5.*" in install
    names = {deps.canonical_name(name) for name in deps.project_names(install[4:])}
    assert {"torch", "diffusers", "pytest", "ruff", "peft", "av", "numpy"} <= names
    assert not {"torchvision", "controlnet-aux"} & names
    assert all("torchvision" not in arg and "controlnet" not in arg for step in plan.steps for arg in step.argv[:-1])
    assert "import torch, diffusers, bpy" in plan.steps[-1].argv[-1]


def test_dev_python_must_be_311_only_when_creating_the_venv(tmp_path: Path) -> None:
    options = deps.Options(dev=True, python="/usr/bin/python3.12")
    with pytest.raises(deps.InstallError, match="3.11"):
        deps.make_plan(options, fake_probes(python=(3, 12)))
    existing = str(deps.venv_python(deps.DEV_VENV, "Linux"))
    plan, _ = deps.make_plan(options, fake_probes(python=(3, 12), paths=(existing,)))
    assert len(plan.steps) == 2


def test_missing_requirements_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deps, "BACKEND_REQUIREMENTS", tmp_path / "backend.txt")
    with pytest.raises(deps.InstallError, match="backend.txt is missing"):
        deps.make_plan(deps.Options(), fake_probes())


def test_old_python_is_refused() -> None:
    with pytest.raises(deps.InstallError, match="too old"):
        deps.make_plan(deps.Options(python="/usr/bin/python3.9"), fake_probes(python=(3, 9)))


# --- package sources ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["venv", "target", "dev"])
def test_find_links_and_offline_reach_every_pip_call(mode: str) -> None:
    sources = {"find_links": (Path("/wheels/a"), Path("/wheels/b")), "offline": True}
    if mode == "dev":
        plan = dev_plan(venv_exists=False, **sources)
    elif mode == "target":
        plan = user_plan("rocm", "Linux", target=Path("/t"), **sources)
    else:
        plan = user_plan("rocm", "Linux", **sources)
    calls = pip_steps(plan)
    assert calls
    for argv in calls:
        assert "--no-index" in argv
        assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "--find-links"] == ["/wheels/a", "/wheels/b"]
        assert "--extra-index-url" not in argv  # --no-index would ignore it anyway; keep the command honest


def test_find_links_without_offline_keeps_the_torch_index() -> None:
    plan = user_plan("cpu", "Linux", find_links=(Path("/wheels"),))
    (install,) = pip_steps(plan)
    assert "--no-index" not in install and "--extra-index-url" in install and "/wheels" in install


# --- requirement files ------------------------------------------------------------------------------------------


def test_backend_requirements_are_pinned() -> None:
    lines = deps.read_requirements(deps.BACKEND_REQUIREMENTS)
    names = {deps.canonical_name(name) for name in deps.project_names(lines)}
    assert names == {deps.canonical_name(name) for name in BACKEND_PACKAGES}
    for line in lines:
        assert "==" in line, line
    assert any(line.startswith("opencv-python-headless==4.") for line in lines)
    numpy = [line for line in lines if line.startswith("numpy")]
    assert numpy == ['numpy==1.26.4; python_version < "3.13"', 'numpy==2.3.5; python_version >= "3.13"']


def test_read_requirements_skips_comments_options_and_excluded(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_text("# comment\n-c other.txt\n\nfoo==1  # why\nControlNet_Aux==0.1\nbar[x]>=2; python_version<'4'\n")
    assert deps.read_requirements(path, frozenset({"controlnet-aux"})) == ["foo==1", "bar[x]>=2; python_version<'4'"]


# --- printing and running -----------------------------------------------------------------------------------------


def test_format_command_quotes_and_prefixes_env() -> None:
    step = deps.Step("t", ("py", "-c", "print('a b')"), (("PYTHONPATH", "/x y"),))
    assert deps.format_command(step, windows=False) == "PYTHONPATH='/x y' py -c 'print('\"'\"'a b'\"'\"')'"
    assert deps.format_command(deps.Step("t", ("C:\\P y\\python.exe", "-m", "pip")), windows=True) == (
        '"C:\\P y\\python.exe" -m pip'
    )


def test_print_plan_lists_exactly_the_commands() -> None:
    plan = user_plan("cpu", "Linux")
    out = io.StringIO()
    deps.print_plan(plan, machine(), out)
    commands = [line for line in out.getvalue().splitlines() if not line.startswith("#")]
    assert commands == [deps.format_command(step) for step in plan.steps]


def fake_plan(tmp_path: Path, *codes: str) -> deps.Plan:
    """A plan whose steps are harmless python -c one-liners; the last one is the report step."""
    steps = [deps.Step(f"step {i}", (sys.executable, "-c", code)) for i, code in enumerate(codes[:-1])]
    steps.append(deps.Step("report", (sys.executable, "-c", codes[-1]), (("T2VZ_TEST", "1"),), report=True))
    return deps.Plan("venv", tuple(steps), Path(sys.executable), tmp_path / "env", deps.TorchBuild("cpu", None),
                     {}, (tmp_path / "env" / "t2vz-env.json", tmp_path / "data" / "t2vz-env.json"),
                     tmp_path / "env" / "t2vz-install.log")


REPORT = ("import json, os; print('noise'); "
          "print(json.dumps({'device': 'cpu', 'versions': {'torch': '2.13.0'}, 'env': os.environ['T2VZ_TEST']}))")


def test_main_runs_the_plan_logs_and_writes_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    plan = fake_plan(tmp_path, "print('hello from step 0')", REPORT)
    monkeypatch.setattr(deps, "make_plan", lambda options, probes: (plan, machine()))
    assert deps.main([]) == 0
    log = plan.log.read_text()
    assert "hello from step 0" in log and "$ " + deps.format_command(plan.steps[0]) in log
    for path in plan.markers:
        marker = json.loads(path.read_text())
        assert marker["python"] == sys.executable and marker["versions"] == {"torch": "2.13.0"}
        assert marker["device"] == "cpu" and marker["torch_flavour"] == "cpu"
    assert "2.13.0" in capsys.readouterr().out


def test_main_reports_the_failing_command_and_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    plan = fake_plan(tmp_path, "import sys; print('No module named pip'); sys.exit(3)", REPORT)
    monkeypatch.setattr(deps, "make_plan", lambda options, probes: (plan, machine()))
    assert deps.main([]) == 1
    err = capsys.readouterr().err
    assert deps.format_command(plan.steps[0]) in err
    assert str(plan.log) in err and "ensurepip" in err
    assert "exit status 3" in plan.log.read_text()
    assert not any(path.exists() for path in plan.markers)


def test_main_refuses_impossible_requests(capsys: pytest.CaptureFixture[str]) -> None:
    assert deps.main(["--dry-run", "--torch", "mps"], fake_probes("Linux")) == 2
    assert "--torch mps" in capsys.readouterr().err


def test_parse_args_rejects_conflicts() -> None:
    with pytest.raises(SystemExit):
        deps.parse_args(["--dev", "--torch", "cuda"])
    with pytest.raises(SystemExit):
        deps.parse_args(["--venv", "a", "--target", "b"])
    options = deps.parse_args(["--find-links", "w1", "--find-links", "w2", "--offline"])
    assert options.find_links == (Path("w1").absolute(), Path("w2").absolute()) and options.offline


# --- --dev: the extra Blender versions of the add-on tests --------------------------------------------------------

PYENV_313 = ("/home/user/.pyenv/versions/3.13.2/bin/python3.13", "/home/user/.pyenv/versions/3.13.10/bin/python3.13")


def blender_probes(pythons: dict[str, tuple[int, int]], on_path: tuple[str, ...] = (),
                   pyenv: tuple[str, ...] = (), venvs: tuple[Path, ...] = ()) -> deps.Probes:
    """Probes where only the interpreters in ``pythons`` run (others fail, as a pyenv shim of an inactive version
    does), ``on_path`` names are on PATH, ``pyenv`` paths match the pyenv glob and ``venvs`` exist."""
    def version(path: str) -> tuple[int, int]:
        if path not in pythons:
            raise deps.InstallError(f"cannot run the Python interpreter {path!r}")
        return pythons[path]

    return deps.Probes(
        which=lambda name: f"/usr/bin/{name}" if name in on_path else None,
        find_library=lambda _name: None,
        exists=lambda path: path in {str(deps.venv_python(venv, "Linux")) for venv in venvs},
        system=lambda: "Linux",
        machine=lambda: "x86_64",
        python_version=version,
        glob=lambda pattern: list(pyenv) if "/.pyenv/versions/" in pattern else [],
        home=lambda: Path("/home/user"),
    )


def extra_steps(probes: deps.Probes, python: str = "/usr/bin/python3") -> tuple[list[deps.Step], list[str]]:
    return deps.extra_blender_steps(deps.Options(dev=True, python=python), "Linux", probes)


def test_extra_blenders_get_venvs_from_the_python_their_bpy_needs() -> None:
    pythons = {"/usr/bin/python3": (3, 11), **dict.fromkeys(PYENV_313, (3, 13))}
    steps, notes = extra_steps(blender_probes(pythons, pyenv=PYENV_313))
    assert notes == []
    old, new = deps.EXTRA_BLENDERS
    assert [step.title for step in steps] == [
        f"Create the virtual environment {old.venv}", "Install bpy 4.2 for the add-on tests", "Check bpy 4.2",
        f"Create the virtual environment {new.venv}", "Install bpy 5.3 for the add-on tests", "Check bpy 5.3"]
    assert steps[0].argv[0] == "/usr/bin/python3"
    assert steps[3].argv[0] == PYENV_313[1]  # pyenv's newest 3.13 (3.13.10 sorts after 3.13.2)
    dev_pins = deps.read_requirements(deps.DEV_REQUIREMENTS) + deps.read_requirements(deps.BACKEND_REQUIREMENTS)
    for step, blender in ((steps[1], old), (steps[4], new)):
        assert step.argv[0] == str(blender.venv / "bin" / "python")
        packages = list(step.argv[4:])
        assert packages[0] == blender.requirement
        assert {deps.canonical_name(n) for n in deps.project_names(packages)} == {
            "bpy", "pytest", "pillow", "numpy", "opencv-python-headless", "openexr", "matplotlib"}
        assert set(packages[1:]) <= set(dev_pins)  # the pins of requirements/, not new ones
        assert "-c" not in step.argv  # the dev constraints hold numpy < 2, which has no Python 3.13 wheels
    assert "import bpy" in steps[2].argv[-1] and '"' in steps[2].argv[-1] and "'" not in steps[2].argv[-1]


def test_a_python_on_path_that_does_not_run_is_passed_over() -> None:
    pythons = {"/usr/bin/python3": (3, 11), PYENV_313[0]: (3, 13)}  # /usr/bin/python3.13 is a failing shim
    steps, notes = extra_steps(blender_probes(pythons, on_path=("python3.13",), pyenv=PYENV_313[:1]))
    assert notes == [] and steps[3].argv[0] == PYENV_313[0]
    pythons["/usr/bin/python3.13"] = (3, 13)
    steps, _ = extra_steps(blender_probes(pythons, on_path=("python3.13",), pyenv=PYENV_313[:1]))
    assert steps[3].argv[0] == "/usr/bin/python3.13"  # PATH before pyenv


def test_an_extra_blender_without_its_python_is_skipped_with_a_note() -> None:
    steps, notes = extra_steps(blender_probes({"/usr/bin/python3": (3, 11)}))
    assert [step.title for step in steps][-1] == "Check bpy 4.2"
    (note,) = notes
    assert "bpy 5.3 skipped" in note and "Python 3.13" in note and "/home/user/.pyenv/versions/3.13*" in note
    plan, found = deps.make_plan(deps.Options(dev=True, python="/usr/bin/python3"),
                                 blender_probes({"/usr/bin/python3": (3, 11)}, venvs=(deps.DEV_VENV,)))
    assert plan.notes == (note,)
    assert [step.title for step in plan.steps][:2] == ["Install the development packages", "Check the environment"]
    out = io.StringIO()
    deps.print_plan(plan, found, out)
    assert f"# note: {note}" in out.getvalue().splitlines()


def test_existing_extra_venvs_are_updated_not_recreated() -> None:
    venvs = tuple(blender.venv for blender in deps.EXTRA_BLENDERS)
    steps, notes = extra_steps(blender_probes({}, venvs=venvs))  # no interpreter needed: each venv has its own
    assert notes == []
    assert [step.title.split()[0] for step in steps] == ["Install", "Check", "Install", "Check"]


# --- the script as a user runs it ---------------------------------------------------------------------------------


def run_script(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
           "LOCALAPPDATA": str(home / "data")}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_dry_run_subprocess_prints_plan_and_creates_nothing(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    result = run_script("--dry-run", "--torch", "cpu", "--venv", str(venv), "--find-links", str(tmp_path / "w"),
                        home=tmp_path)
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert len(commands) == 3
    assert commands[0].endswith(f"-m venv {venv}")
    assert "torch==2.13.0" in commands[1] and "diffusers==0.42.1" in commands[1]
    assert f"--find-links {tmp_path / 'w'}" in commands[1]
    if sys.platform.startswith(("linux", "win")):
        assert "--extra-index-url https://download.pytorch.org/whl/cpu" in commands[1]
    assert list(tmp_path.iterdir()) == []


def test_dev_dry_run_subprocess(tmp_path: Path) -> None:
    result = run_script("--dev", "--dry-run", home=tmp_path)
    assert result.returncode == 0, result.stderr
    pip_lines = [line for line in result.stdout.splitlines() if " -m pip install " in line]
    dev_lines = [line for line in pip_lines if line.startswith(str(deps.DEV_VENV / "bin"))]
    assert dev_lines and all("-c " + str(deps.DEV_CONSTRAINTS) in line for line in dev_lines)
    assert "'bpy==4.5.*'" in result.stdout
    assert list(tmp_path.iterdir()) == []


# --- --farm (issue 15) ------------------------------------------------------------------------------------------


def test_farm_adds_ray_to_the_user_plan_and_dev_always_has_it() -> None:
    def packages(plan: deps.Plan) -> set[str]:
        return {deps.canonical_name(n) for argv in pip_steps(plan) for n in deps.project_names(argv[4:])}

    assert "ray" not in packages(user_plan("cpu", "Linux"))
    assert "ray" in packages(user_plan("cpu", "Linux", farm=True))
    assert "ray" in packages(dev_plan())
    assert deps.parse_args(["--farm"]).farm and not deps.parse_args([]).farm
    assert deps.read_requirements(deps.FARM_REQUIREMENTS) == ["ray==2.60.0"]
