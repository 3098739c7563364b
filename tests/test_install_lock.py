"""requirements.lock: it agrees with pyproject, this environment is what it says, and the
checks that enforce both fail on the drifts they exist for."""

import json
import sys
import textwrap
import zipfile

import pytest
from packaging.requirements import Requirement

from core import lockfile
from core.cli import lock as lock_cli
from core.cli.main import main
from core.plugins import installer


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_this_environment_the_lock_and_pyproject_agree():
    # What `make test` runs before pytest; here so a failure names every package at once.
    assert lock_cli.check() == []


def test_every_locked_line_is_an_exact_pin_and_the_torch_pair_is_locked():
    packages = lockfile.read_lock()
    names = {p.name for p in packages}
    assert {"torch", "torchvision", "pip", "setuptools", "wheel", "transformers", "peft"} <= names
    assert len(packages) > 100  # every transitive dependency, not just the direct ones


def test_pyproject_excludes_the_transformers_that_breaks_locked_peft():
    declared = {r.name: r for r in lockfile.declared_requirements()}
    assert not declared["transformers"].specifier.contains("5.24.0")
    assert declared["peft"].specifier.contains(lockfile.locked_versions()["peft"])


def test_read_lock_names_the_file_and_line_of_a_range(tmp_path):
    lock = write(tmp_path / "requirements.lock", "# header\nfoo==1.0\n    # via bar\nbaz>=2\n")
    with pytest.raises(lockfile.LockError, match=r"requirements.lock:4: 'baz>=2' is not an exact pin"):
        lockfile.read_lock(lock)
    with pytest.raises(lockfile.LockError, match="no lock file"):
        lockfile.read_lock(tmp_path / "missing.lock")


def test_markers_decide_which_lines_apply(tmp_path):
    lock = write(
        tmp_path / "requirements.lock",
        """
        numpy==1.0 ; python_full_version < '3.0'
        numpy==2.0 ; python_full_version >= '3.0'
        only-elsewhere==3.0 ; sys_platform == 'no-such-platform'
        plain==4.0
        """,
    )
    assert lockfile.locked_versions(lock) == {"numpy": "2.0", "plain": "4.0"}
    assert sys.version_info >= (3, 0)


def test_pyproject_disagreements_name_missing_and_out_of_range_packages(tmp_path):
    pyproject = write(
        tmp_path / "pyproject.toml",
        """
        [build-system]
        requires = ["setuptools>=77"]
        [project]
        name = "x"
        dependencies = ["transformers>=5.23,<5.24", "peft>=0.21"]
        [project.optional-dependencies]
        test = ["pytest>=9"]
        """,
    )
    lock = write(tmp_path / "requirements.lock", "transformers==5.24.0\nsetuptools==84.2.1\npytest==9.2.0\n")
    problems = lockfile.pyproject_disagreements(pyproject, lock)
    assert problems == [
        "requirements.lock has transformers==5.24.0, outside pyproject's transformers<5.24,>=5.23",
        "peft>=0.21 is in pyproject.toml but not in requirements.lock",
    ]


def test_a_cuda_build_of_torch_is_the_locked_release():
    assert lockfile.same_release("2.14.1+cu126", "2.14.1")
    assert not lockfile.same_release("2.14.2", "2.14.1")


def test_environment_mismatches_report_missing_and_moved_packages(tmp_path):
    installed_pluggy = lockfile.installed_version("pluggy")
    lock = write(
        tmp_path / "requirements.lock",
        f"pluggy=={installed_pluggy}\npackaging==0.1\nno-such-package-easel==1.0\npip==0.1\n",
    )
    mismatches = lockfile.environment_mismatches(lock)
    assert [(m.name, m.locked) for m in mismatches] == [
        ("no-such-package-easel", "1.0"),
        ("packaging", "0.1"),
    ]
    assert mismatches[0].installed is None
    assert mismatches[1].installed == lockfile.installed_version("packaging")


def make_distribution(site, name, version, files=None, requires=()):
    """A minimal installed distribution (dist-info + files) on a path importlib.metadata reads."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    (info / "METADATA").write_text(metadata)
    for relative, text in (files or {}).items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(text)


def test_integration_minimums_catch_a_library_that_needs_a_newer_integration(tmp_path, monkeypatch):
    # The 2026-12-02 drift: a library whose own table wants a newer peft than the lock has.
    table = 'deps = {"peft": "peft>=999.0", "pluggy": "pluggy>=0.1"}\n'
    make_distribution(tmp_path, "fakelib", "5.24.0", {"fakelib/dependency_versions_table.py": table})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(lockfile, "INTEGRATION_TABLES", {"fakelib": ("peft", "pluggy")})
    problems = lockfile.integration_minimums_unmet()
    peft = lockfile.installed_version("peft")
    assert problems == [
        f"fakelib 5.24.0 needs peft>=999.0, this environment has peft {peft}: "
        "exclude that fakelib in pyproject.toml and re-lock"
    ]


def test_the_real_integration_tables_are_read():
    # If transformers moved or renamed its table, the check above would silently pass.
    assert Requirement(lockfile.dependency_table("transformers")["peft"]).name == "peft"
    assert "peft" in lockfile.dependency_table("diffusers")


def test_lock_inputs_are_the_build_system_pip_and_the_torch_pair():
    inputs = lock_cli.lock_inputs(["torch==2.14.1", "torchvision==0.29.1"])
    assert inputs == ["setuptools>=77", "wheel", "pip", "torch==2.14.1", "torchvision==0.29.1"]


def test_doctor_reports_versions_against_the_lock(capsys):
    assert main(["doctor", "--json", "--no-extensions"]) == 0
    report = json.loads(capsys.readouterr().out)
    locked = lockfile.locked_versions()
    rows = {row["name"]: row for row in report["packages"]}
    for name in ("torch", "diffusers", "transformers", "peft", "gradio"):
        assert rows[name]["locked"] == locked[name]
        assert rows[name]["installed"] == lockfile.installed_version(name)
        assert rows[name]["status"] == "ok"
    assert report["lock"]["matches"] is True
    assert report["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert report["torch"]["cuda_available"] is False and report["torch"]["gpus"] == []


def test_doctor_text_hides_secrets_and_fails_when_a_package_differs(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("EASEL_API_AUTH", "alice:hunter2")
    lock = write(tmp_path / "requirements.lock", "diffusers==0.0.1\n")
    monkeypatch.setattr(lockfile, "LOCK_PATH", lock)
    assert main(["doctor", "--no-extensions"]) == 1
    out = capsys.readouterr().out
    assert "hunter2" not in out and "EASEL_API_AUTH=(set, not shown)" in out
    diffusers_line = next(line for line in out.splitlines() if line.startswith("diffusers "))
    assert diffusers_line.split()[2:] == ["0.0.1", "DIFFERS"]
    assert "this environment DIFFERS" in out


def build_wheel(folder, name, version, requires=()):
    """A pure-Python wheel with no code, only metadata: enough for pip to resolve."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{dist}.dist-info/METADATA", metadata)
        wheel.writestr(
            f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def test_installer_names_the_locked_package_a_deeper_requirement_would_move(tmp_path, monkeypatch):
    # The extension asks for nothing locked itself; its dependency needs an older pluggy.
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels, "easel-test-needs-old-pluggy", "1.0", requires=["pluggy<1.1"])
    build_wheel(wheels, "pluggy", "1.0.0")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    pluggy_before = lockfile.installed_version("pluggy")
    with pytest.raises(installer.InstallError) as refused:
        installer.pip_install(["easel-test-needs-old-pluggy"], "needs_old_pluggy")
    message = str(refused.value)
    assert f"pluggy {pluggy_before} -> 1.0.0" in message and "requirements.lock" in message
    assert lockfile.installed_version("pluggy") == pluggy_before
    assert lockfile.installed_version("easel-test-needs-old-pluggy") is None


def test_installer_holds_every_locked_package_not_only_the_core_list():
    held = installer.protected_versions()
    locked = lockfile.locked_versions()
    assert "starlette" not in installer.CORE_PACKAGES and held["starlette"] == locked["starlette"]
    assert "pip" not in held
