"""The demo data set: a fresh SQLite store with synthetic and Synthea patients."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from medfusion.config import get_settings
from medfusion.services.database import open_repository, open_security
from medfusion.services.importer import ImportReport, find_files, import_paths
from medfusion.synth import write_bundles

__all__ = ["build_demo", "demo_admin"]

DEMO_DB = Path(".medfusion/demo.db")


def build_demo(
    *, patients: int, seed: int = 7, progress: Callable[[int, int], None] | None = None
) -> tuple[str, ImportReport]:
    """Create ``.medfusion/demo.db`` afresh and load it.

    Returns
    -------
    tuple
        The database URL and the import report.
    """
    for suffix in ("", "-wal", "-shm"):
        Path(f"{DEMO_DB}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{DEMO_DB}"
    repo = open_repository(url)
    synthea = get_settings().data_dir / "synthea"
    with tempfile.TemporaryDirectory(prefix="medfusion-demo-") as folder:
        write_bundles(Path(folder), patients=patients, seed=seed)
        paths = [Path(folder)] + ([synthea] if synthea.is_dir() else [])
        files = find_files(paths)
        done = 0

        def advance(_path: Path) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, len(files))

        report = import_paths(repo, paths=files, progress=advance)
    return url, report


def demo_admin(url: str) -> tuple[str, str]:
    """Create the demo's admin user with a fresh random password; returns (name, password).

    The password is printed once and stored only as its argon2 hash.
    """
    from medfusion.services.security import add_user

    password = secrets.token_urlsafe(18)
    store = open_security(url)
    try:
        add_user(store, name="admin", role="admin", password=password)
    finally:
        store.close()
    return "admin", password
