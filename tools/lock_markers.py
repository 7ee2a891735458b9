"""Give pinned requirements the environment markers that pyproject.toml gives them.

``pip freeze`` writes ``uvloop==0.23.0`` without the ``sys_platform != 'win32' and ...`` that
pyproject.toml puts on it, so ``pip install -r requirements/runtime.lock`` failed wherever the
marker excludes the package (Windows, PyPy). Reads a freeze on stdin, writes it with markers.

    pip freeze --exclude notifyd | python tools/lock_markers.py
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _name(requirement: str) -> str:
    """The normalised distribution name a requirement starts with (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def markers(pyproject: Path = PYPROJECT) -> dict[str, str]:
    """Distribution name -> its marker, for every dependency (optional ones too) that has one."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    found: dict[str, str] = {}
    for requirement in requirements:
        if ";" in requirement:
            spec, marker = requirement.split(";", 1)
            found[_name(spec)] = marker.strip()
    return found


def with_markers(lines: list[str], known: dict[str, str]) -> list[str]:
    out = []
    for line in lines:
        marker = known.get(_name(line)) if "==" in line and ";" not in line else None
        out.append(f"{line}; {marker}" if marker else line)
    return out


def main() -> int:
    lines = sys.stdin.read().splitlines()
    sys.stdout.write("".join(f"{line}\n" for line in with_markers(lines, markers())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
