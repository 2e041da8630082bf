"""Where sqsim finds the shared real data (trained weights, prototxts, images, labels).

The one helper every test, benchmark and notebook uses: the folder named by the environment
variable ``SQSIM_SHARED_DATA``, else ``../shared/data`` beside the repository root.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """The shared data folder (it may not exist; see :func:`shared_data`)."""
    env = os.environ.get("SQSIM_SHARED_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "data").resolve()


def shared_data(*parts: str) -> Path | None:
    """Path of a file in the shared data folder, or None when it is not there."""
    p = shared_data_dir().joinpath(*parts)
    return p if p.exists() else None


def shared_data_missing_reason(*parts: str) -> str:
    """A clear skip reason for tests that need a shared file."""
    return (f"shared data file {'/'.join(parts)!r} not found under {shared_data_dir()} "
            f"(set SQSIM_SHARED_DATA to the folder holding sqsim's shared data)")


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename,
    so a reader never sees a partially written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
