"""Files: where sqsim finds the shared real data, how it reads text inputs, how it writes outputs.

* :func:`shared_data`: the one helper every test, benchmark and notebook uses to find the shared
  data: the folder named by the environment variable ``SQSIM_SHARED_DATA``, else
  ``../shared/data`` beside the repository root.
* :func:`read_text`: an input text file, size-checked (:mod:`sqsim.limits`) and decoded with a
  clear error for a file that is not UTF-8.
* :func:`atomic_write_bytes`: every output file, written to a temporary file and renamed, with
  one-line errors for unwritable paths and no temporary file left behind.
"""
from __future__ import annotations

import os
import re
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


# --- reading text inputs -------------------------------------------------------------------------
def read_text(path, what: str = "file", error=None) -> str:
    """The text of an input file (UTF-8, with or without a byte-order mark; UTF-16 with one).

    Checks the file's size against the ``text_bytes`` limit first.  Raises ``error`` (default
    :class:`~sqsim.errors.SpecError`) naming the file: unreadable, a directory, not text.
    """
    from .errors import SpecError
    from .limits import check_file
    error = error or SpecError
    check_file(path, "text")
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}") from None
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror or e})") from None
    return decode_text(data, str(path), what, error)


def decode_text(data: bytes, source: str, what: str = "file", error=None) -> str:
    """Decode input bytes as UTF-8 (UTF-16 when they start with its byte-order mark)."""
    from .errors import SpecError
    error = error or SpecError
    try:
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise error(f"{source}:{line}: the {what} is not UTF-8 text (byte {data[e.start]:#04x} at offset "
                    f"{e.start}); save it as UTF-8") from None


# --- writing outputs atomically -------------------------------------------------------------------
# Temporary files being written now: a SIGTERM handler (sqsim.cli) removes them before exiting.
_IN_PROGRESS: set = set()
_TMP = re.compile(r"^\..+\.tmp(\d+)$")


def temp_path(path: Path) -> Path:
    """The temporary file beside ``path`` that an atomic write of it uses (``.NAME.tmpPID``)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def remove_in_progress() -> None:
    """Remove the temporary files of writes in progress (called on SIGTERM)."""
    for tmp in list(_IN_PROGRESS):
        try:
            os.unlink(tmp)
        except OSError:
            pass
        _IN_PROGRESS.discard(tmp)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True   # someone else's live process, or not a pid: leave the file alone
    return True


def remove_stale_temp_files(folder) -> list:
    """Remove ``.NAME.tmpPID`` files in ``folder`` left by sqsim processes that no longer run
    (killed during a write); returns the paths removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TMP.match(e.name)
        if not m or not e.is_file(follow_symlinks=False) or _pid_alive(int(m.group(1))):
            continue
        try:
            os.unlink(e.path)
            removed.append(e.path)
        except OSError:
            pass
    return removed


def check_output_path(path, what: str = "output") -> Path:
    """Check, before any work, that ``path`` can be written: a file name in an existing, writable
    folder, not a directory.  Raises :class:`~sqsim.errors.OutputError` (one line)."""
    from .errors import OutputError
    text = os.fspath(path) if path is not None else ""
    if not text or not text.strip():
        raise OutputError(f"the {what} path is empty: give a file name (e.g. -o out.yaml)")
    p = Path(text)
    try:
        if text.endswith(os.sep) or p.is_dir():
            raise OutputError(f"{text}: is a directory; give a file name for the {what}")
        folder = p.parent
        if not folder.is_dir():
            raise OutputError(f"{text}: cannot write the {what}: folder {str(folder)!r} does not exist")
        writable = os.access(folder, os.W_OK | os.X_OK)
    except (OSError, ValueError) as e:   # a name too long, a symlink loop, a NUL byte
        raise OutputError(f"{text[:200]}: cannot write the {what} ({getattr(e, 'strerror', None) or e})") from None
    if not writable:
        try:
            read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        except OSError:
            read_only = False
        raise OutputError(f"{text}: cannot write the {what}: folder {str(folder)!r} is "
                          f"{'on a read-only file system' if read_only else 'not writable'}")
    return p


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename,
    so a reader never sees a partially written file.

    Temporary files left by killed sqsim processes in that folder are removed first; a SIGTERM
    during the write removes this one (see :func:`remove_in_progress`).  Any failure raises
    :class:`~sqsim.errors.OutputError` naming the file, and leaves neither the temporary file nor a
    changed target.
    """
    from .errors import OutputError
    path = check_output_path(path)
    remove_stale_temp_files(path.parent)
    tmp = temp_path(path)
    _IN_PROGRESS.add(str(tmp))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        _IN_PROGRESS.discard(str(tmp))
        try:
            os.unlink(tmp)
        except OSError:
            pass


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
