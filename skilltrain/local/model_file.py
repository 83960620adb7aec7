"""The assembled model file on disk: join the parts into it atomically, then vouch for it.

Kept apart from the registry (`assets`) because none of this knows about packages or model
names: it takes part files and a pinned size and sha256, and guarantees that a half-written or
corrupt file never appears under the final name, and that a verified one is not rehashed on
every start (a sidecar records the hash against the file's size, mtime and inode).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from skilltrain.files import atomic_write

from .errors import LocalModelError, ModelIntegrityError

GGUF_MAGIC = b"GGUF"
_CHUNK = 4 * 1024 * 1024
_TEMP_SUFFIX = ".partial"
_SIDECAR_SUFFIX = ".verified.json"

Progress = Callable[[int, int], None]
"""Called with (bytes written so far, total bytes) while a model file is being joined."""


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + _SIDECAR_SUFFIX)


def _read_sidecar(dest: Path) -> dict[str, object] | None:
    try:
        data = json.loads(_sidecar(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_sidecar(dest: Path, sha256: str) -> None:
    """Record that `dest`, as it is now (size, mtime, inode), hashed to `sha256`. Written atomically
    so a crash leaves either no record or a complete one."""
    st = dest.stat()
    record = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}
    _atomic_write_text(_sidecar(dest), json.dumps(record) + "\n")


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, text, temp_suffix=_TEMP_SUFFIX)


def is_verified(dest: Path, *, size: int, sha256: str) -> bool:
    """Cheap check that `dest` is the expected file: its size matches and the sidecar says this
    very file (same size, mtime and inode) was hashed to `sha256`. Does not read the file, so it
    guards against crashes and replaced files, not against deliberate same-second tampering."""
    try:
        st = dest.stat()
    except OSError:
        return False
    if st.st_size != size:
        return False
    record = _read_sidecar(dest)
    if record is None:
        return False
    return (
        record.get("sha256") == sha256
        and record.get("size") == size
        and record.get("mtime_ns") == st.st_mtime_ns
        and record.get("inode") == st.st_ino
    )


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an advisory lock so that two processes do not join the same model at once.
    Where fcntl is missing (Windows) we go without: unique temp names keep it safe, only slower."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_stale_temps(dest: Path) -> None:
    """Delete temp files left by an interrupted join; only called while holding the lock."""
    for stale in dest.parent.glob(f".{dest.name}.*{_TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            stale.unlink()


def join_parts(
    parts: Sequence[Path],
    dest: Path,
    *,
    size: int,
    sha256: str,
    progress: Progress | None = None,
) -> Path:
    """Concatenate `parts` into `dest` and verify size, sha256 and GGUF magic.

    The bytes go to a hidden temp file in the same directory, which is fsynced and renamed to
    `dest` only after every check passed; then a sidecar records the verified hash so later calls
    can skip rehashing. An existing `dest` that is already verified is reused as is; one with the
    right size but no valid sidecar is rehashed (a crash between rename and sidecar) before being
    trusted. On any failure no file appears under `dest`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest.with_name(dest.name + ".lock")):
        if is_verified(dest, size=size, sha256=sha256):
            return dest
        _remove_stale_temps(dest)
        if _adopt_existing(dest, size=size, sha256=sha256):
            return dest
        _check_parts(parts, size)
        _check_free_space(dest.parent, size)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{dest.name}.", suffix=_TEMP_SUFFIX, dir=dest.parent
        )
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                actual = _copy_and_hash(parts, out, size, progress)
                out.flush()
                os.fsync(out.fileno())
            _verify_written(tmp, size=size, sha256=sha256, actual=actual)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; the model is not a secret
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _write_sidecar(dest, sha256)
    return dest


def _adopt_existing(dest: Path, *, size: int, sha256: str) -> bool:
    """Trust a correctly sized `dest` that lacks a sidecar only after hashing it; remove it when
    it is wrong so that a fresh join replaces it."""
    try:
        st = dest.stat()
    except OSError:
        return False
    if st.st_size == size and file_sha256(dest) == sha256 and _has_magic(dest):
        _write_sidecar(dest, sha256)
        return True
    with contextlib.suppress(OSError):
        dest.unlink()
    with contextlib.suppress(OSError):
        _sidecar(dest).unlink()
    return False


def _check_parts(parts: Sequence[Path], size: int) -> None:
    if not parts:
        raise ModelIntegrityError("no part files to join")
    total = 0
    for part in parts:
        try:
            total += Path(part).stat().st_size
        except OSError as exc:
            raise ModelIntegrityError(f"cannot read part {part}: {exc}") from None
    if total != size:
        raise ModelIntegrityError(f"parts add up to {total:,} bytes, expected {size:,}")
    if not _has_magic(Path(parts[0])):
        raise ModelIntegrityError(f"first part {parts[0]} does not start with the GGUF magic")


def _check_free_space(directory: Path, size: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < size:
        raise LocalModelError(
            f"not enough disk space in {directory}: need {size:,} bytes, {free:,} free "
            "(set SKILLTRAIN_CACHE to use another directory)"
        )


def _copy_and_hash(
    parts: Sequence[Path], out: BinaryIO, size: int, progress: Progress | None
) -> str:
    digest = hashlib.sha256()
    written = 0
    write = out.write
    for part in parts:
        with open(part, "rb") as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                write(chunk)
                written += len(chunk)
                if progress is not None:
                    progress(written, size)
    return digest.hexdigest()


def _verify_written(tmp: Path, *, size: int, sha256: str, actual: str) -> None:
    got = tmp.stat().st_size
    if got != size:
        raise ModelIntegrityError(f"joined file has {got:,} bytes, expected {size:,}")
    if actual != sha256:
        raise ModelIntegrityError(f"joined file has sha256 {actual}, expected {sha256}")
    if not _has_magic(tmp):
        raise ModelIntegrityError("joined file does not start with the GGUF magic")


def _has_magic(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(GGUF_MAGIC)) == GGUF_MAGIC
