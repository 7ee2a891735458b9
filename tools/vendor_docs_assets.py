"""Refresh the API docs' vendored files in notifyd/api/static/docs/ from npm.

    python tools/vendor_docs_assets.py [--swagger-ui 5.35.0] [--redoc 2.5.4]

Fetches the packages with ``npm pack`` (the registry's own client), copies the files the docs
pages load plus the licences, and makes two changes to them, both so that a docs page
requests nothing from another origin: the ``sourceMappingURL`` comments are dropped (the maps
are not shipped), and ReDoc's footer logo, an ``<img>`` from cdn.redoc.ly, is not rendered.
``docs.js`` (what starts Swagger UI) is notifyd's own and is left alone. Bump
``apidocs.py``'s docstring when the versions change.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "notifyd" / "api" / "static" / "docs"
SWAGGER_FILES = {
    "swagger-ui-bundle.js": "swagger-ui-bundle.js",
    "swagger-ui-bundle.js.LICENSE.txt": "swagger-ui-bundle.js.LICENSE.txt",
    "swagger-ui.css": "swagger-ui.css",
    "favicon-32x32.png": "favicon-32x32.png",
    "LICENSE": "LICENSE.swagger-ui",
}
REDOC_FILES = {
    "bundles/redoc.standalone.js": "redoc.standalone.js",
    "bundles/redoc.standalone.js.LICENSE.txt": "redoc.standalone.js.LICENSE.txt",
    "LICENSE": "LICENSE.redoc",
}
REDOC_LOGO = b'e?n.createElement("img",{alt:"redocly logo",onError:()=>t(!1),src:"https://cdn.redoc.ly/redoc/logo-mini.svg"}):null'
SOURCE_MAP = re.compile(rb"\n?(//# sourceMappingURL=\S+|/\*# sourceMappingURL=\S+\*/)\s*$")


def _unpack(spec: str, work: Path) -> Path:
    done = subprocess.run(["npm", "pack", spec], cwd=work, capture_output=True, text=True, check=True)
    archive = work / done.stdout.strip().splitlines()[-1]
    out = work / archive.stem
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    return out / "package"


def _copy(package: Path, files: dict[str, str]) -> None:
    for source, name in files.items():
        data = (package / source).read_bytes()
        if name.endswith((".js", ".css")):
            data = SOURCE_MAP.sub(b"\n", data)
        if name == "redoc.standalone.js":
            if data.count(REDOC_LOGO) != 1:
                raise SystemExit("ReDoc's footer logo is not where it was: check the bundle by hand")
            data = data.replace(REDOC_LOGO, b"null")
        (TARGET / name).write_bytes(data)
        print(f"{name}: {len(data):,} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swagger-ui", default="5.35.0")
    parser.add_argument("--redoc", default="2.5.4")
    args = parser.parse_args()
    if shutil.which("npm") is None:
        raise SystemExit("npm is needed to fetch the packages")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _copy(_unpack(f"swagger-ui-dist@{args.swagger_ui}", work), SWAGGER_FILES)
        _copy(_unpack(f"redoc@{args.redoc}", work), REDOC_FILES)


if __name__ == "__main__":
    main()
