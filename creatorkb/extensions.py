"""DuckDB extensions shipped on PyPI (duckdb-extension-<name>, one build per duckdb version):
loaded from the package's file, as DuckDB's own extension host is not reachable everywhere."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import duckdb

from creatorkb.errors import LedgerError


def packaged_extension(package: ModuleType, name: str) -> Path:
    """The `name` extension's file in `package` for the installed duckdb."""
    version = duckdb.__version__
    directory = Path(str(package.__file__)).parent
    path = directory / "extensions" / f"v{version}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise LedgerError(
            f"no {name} extension for duckdb {version} in {directory}; install "
            f"duckdb-extension-{name}=={version} (python3 dev.py syncs the lock file)"
        )
    return path
