"""Packaging: one version, the stand-ins behind their extra, licence notices, locks, one backoff."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import notifyd
from channels.backoff import Backoff
from notifyd.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_notifyd_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"notifyd {notifyd.__version__}"


def test_the_version_is_written_once_in_notifyd_init():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    written = [
        path.relative_to(ROOT)
        for path in [*ROOT.glob("notifyd/**/*.py"), *ROOT.glob("channels/**/*.py")]
        if re.search(r"""version_*\s*=\s*["']\d+\.\d+""", path.read_text())
    ]
    assert written == [Path("notifyd/__init__.py")]


def test_runtime_dependencies_are_ranges_and_declare_redis():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in deps if "==" in d.split(";")[0]]  # a marker may compare with ==
    names = {re.split(r"[\[<>=!~ ]", d, maxsplit=1)[0].lower() for d in deps}
    assert "redis" in names
    assert not names & {"aiosmtpd", "httpx-aiohttp", "tenacity"}  # extras or unused


def test_the_locks_pin_every_runtime_dependency_exactly():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for lock in ("requirements/runtime.lock", "requirements/dev.lock"):
        lines = [ln for ln in (ROOT / lock).read_text().splitlines() if ln and not ln.startswith("#")]
        pinned = {ln.split("==")[0].lower().replace("_", "-") for ln in lines}
        assert all("==" in ln for ln in lines), lock
        for dep in deps:
            name = re.split(r"[\[<>=!~ ]", dep, maxsplit=1)[0].lower()
            assert name in pinned, f"{name} is not in {lock}"
    assert "aiosmtpd==" in (ROOT / "requirements/dev.lock").read_text()


def test_the_dev_lock_satisfies_every_range_in_pyproject():
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = (ROOT / "requirements/dev.lock").read_text().splitlines()
    locked = {
        name.lower().replace("_", "-"): version.split(";")[0].strip()
        for name, _, version in (ln.partition("==") for ln in lines if "==" in ln)
    }
    wanted = [*project["dependencies"], *sum(project["optional-dependencies"].values(), [])]
    for requirement in (Requirement(spec) for spec in wanted):
        if requirement.name == "notifyd":
            continue
        version = locked[requirement.name.lower().replace("_", "-")]
        assert requirement.specifier.contains(version), f"{requirement} but the lock has {version}"
    assert "aiosmtpd" not in (ROOT / "requirements/runtime.lock").read_text()


def test_the_locks_keep_pyproject_s_environment_markers():
    # pip freeze drops them: a lock that pins uvloop unconditionally cannot install on Windows.
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *sum(project["optional-dependencies"].values(), [])]
    marked = {r.name.lower(): r.marker for r in map(Requirement, wanted) if r.marker is not None}
    assert "uvloop" in marked
    for lock in ("requirements/runtime.lock", "requirements/dev.lock"):
        pins = [Requirement(ln) for ln in (ROOT / lock).read_text().splitlines() if "==" in ln]
        for pin in pins:
            if pin.name.lower() in marked:
                assert pin.marker == marked[pin.name.lower()], f"{lock}: {pin}"


def test_derived_code_keeps_its_licence_notice():
    lua = (ROOT / "notifyd/state/lua/ratelimit.lua").read_text()
    assert "SPDX-License-Identifier: MIT" in lua and "Ali-Akber Saifee" in lua
    notice = (ROOT / "NOTICE").read_text()
    assert "ratelimit.lua" in notice and "Ali-Akber Saifee" in notice
    assert "Apache License" in (ROOT / "LICENSE").read_text()


def test_the_api_docs_files_are_package_data_with_their_licences():
    from notifyd.api.apidocs import ASSETS, ASSETS_DIR

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "notifyd"
    ]
    for name in [*ASSETS, "LICENSE.swagger-ui", "LICENSE.redoc"]:
        path = ROOT / "notifyd" / "api" / ASSETS_DIR / name
        assert path.is_file(), name
        # What the wheel takes: a package-data glob matches the file (a folder glob does not).
        assert any(path.relative_to(ROOT / "notifyd").match(g) for g in globs), (name, globs)
    notice = (ROOT / "NOTICE").read_text()
    assert "swagger-ui-dist 5.35.0" in notice and "redoc 2.5.4" in notice


def test_notifyd_dev_standins_without_the_extra_prints_an_install_hint():
    # A bare `pip install notifyd` has no aiosmtpd; block its import in a fresh interpreter.
    code = (
        "import sys; sys.modules['aiosmtpd'] = None; sys.modules['aiosmtpd.smtp'] = None\n"
        "from notifyd.cli import main\n"
        "sys.exit(main(['dev', '--standins']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'notifyd[standins]'" in lines[0]


def test_plain_notifyd_dev_never_imports_the_standins():
    code = (
        "import sys; sys.modules['aiosmtpd'] = None\n"
        "import notifyd.cli, notifyd.cli.dev, notifyd.api.app, notifyd.runtime.worker\n"
        "assert 'notifyd.standins' not in sys.modules, 'imported the stand-ins'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=ROOT)


def test_backoff_doubles_from_its_first_pause_up_to_its_cap():
    backoff = Backoff(first=0.5, cap=3.0)
    pauses, pause = [], None
    for _ in range(5):
        pause = backoff.next(pause)
        pauses.append(pause)
    assert pauses == [0.5, 1.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError):
        Backoff(first=2.0, cap=1.0)


def test_the_demo_without_the_standins_extra_prints_the_install_hint():
    code = (
        "import sys; sys.modules['aiosmtpd'] = None; sys.modules['aiosmtpd.smtp'] = None\n"
        "from notifyd.demo import main\n"
        "sys.exit(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "pip install 'notifyd[standins]'" in result.stderr


def test_the_readme_and_docs_link_only_to_files_in_the_repository():
    for doc in [ROOT / "README.md", *ROOT.glob("docs/*.md")]:
        text = doc.read_text()
        assert "../shared" not in text, doc.name
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not target.startswith(("http://", "https://", "mailto:")):
                assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
