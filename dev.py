"""Set up the project from its lock file, then run `kb` or the tests. Needs only Python 3.11.

    python3 dev.py kb run      # the main job (any kb command works: kb doctor, kb scan, ...)
    python3 dev.py test        # lint, then the whole test suite in 2 workers (args go to pytest)

The first call creates `.venv`, installs the pinned uv into it and syncs exactly the
versions in `uv.lock`, compiling their bytecode once (Python is often run with
PYTHONDONTWRITEBYTECODE, which would otherwise compile every module at every start); later
calls only re-sync (a no-op when nothing changed).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
UV_VERSION = "0.13.9"
COMPILED_FOR = VENV / ".compiled-for-lock"  # the uv.lock whose packages were compiled


def run(*command: str | Path) -> None:
    done = subprocess.run([str(part) for part in command], cwd=ROOT)
    if done.returncode:
        sys.exit(done.returncode)


def set_up() -> None:
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"creatorkb needs Python 3.11; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("creating .venv", flush=True)
        venv.create(VENV, with_pip=True)
    if not (BIN / "uv").exists():
        run(BIN / "python", "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}")
    lock = hashlib.sha256((ROOT / "uv.lock").read_bytes()).hexdigest()
    if COMPILED_FOR.exists() and COMPILED_FOR.read_text() == lock:
        run(BIN / "uv", "sync", "--frozen", "--quiet")
        return
    print("installing the locked packages (their bytecode compiled once) ...", flush=True)
    run(BIN / "uv", "sync", "--frozen", "--quiet", "--compile-bytecode")
    COMPILED_FOR.write_text(lock)


def main(arguments: list[str]) -> None:
    if not arguments or arguments[0] not in ("kb", "test"):
        sys.exit(__doc__)
    set_up()
    command, rest = arguments[0], arguments[1:]
    if command == "kb":
        os.execv(BIN / "kb", [str(BIN / "kb"), *rest])
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    # Two workers (each with its own Prefect test server): the suite is mostly waiting.
    # loadgroup keeps a module marked xdist_group (one shared pipeline run) on one worker.
    run(BIN / "python", "-m", "pytest", "--numprocesses=2", "--dist=loadgroup", *rest)


if __name__ == "__main__":
    main(sys.argv[1:])
