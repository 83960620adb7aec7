"""What runs inside the local server's child process: its configuration, arguments and serve loop.

`LocalServer` (in `server.py`) starts this file by path, not as `skilltrain.local.child`:
importing the package would import all of skilltrain (slower, and one broken import elsewhere
would take the server down). So this module imports only the standard library at top level, and
the parent and the child agree on `ServerConfig` and the readiness line by sharing this file.
It also runs by hand: `python -m skilltrain.local.server --model 0.5b` (or `python child.py
--model FILE.gguf` by path, for a GGUF file only: a registry name needs the package).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

READY_PREFIX = "SKILLTRAIN-LOCAL-SERVER-READY "
"""Starts the one line the child prints once the model is loaded (a JSON object follows)."""
_PR_SET_PDEATHSIG = 1


# Context per server. An analyst prompt holds the skill and up to 20 rollouts: with 4,096 the
# 1.5B optimizer's requests on gym-leg-counting (long answers) failed with HTTP 400 every step.
# Qwen2.5-Coder takes 32K; the KV cache at 16K is ~0.45 GB for the 1.5B model, ~0.2 GB for 0.5B.
DEFAULT_CTX = 16384


def default_threads() -> int:
    """CPU threads for generation: the cores this process may run on (respects taskset and
    container CPU sets, unlike os.cpu_count())."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ServerConfig:
    """Everything the child needs to start serving one model file."""

    model_path: Path
    aliases: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 0
    ctx_size: int = DEFAULT_CTX
    threads: int = field(default_factory=default_threads)
    parallel: int = 1
    cache_prompt: bool = True
    verbosity: int = 2

    def to_args(self) -> list[str]:
        """The child's command line for this config; `main` parses it back into one."""
        args = [
            "--model", str(self.model_path),
            "--host", self.host,
            "--port", str(self.port),
            "--ctx-size", str(self.ctx_size),
            "--threads", str(self.threads),
            "--parallel", str(self.parallel),
            "--verbosity", str(self.verbosity),
        ]  # fmt: skip
        for alias in self.aliases:
            args += ["--alias", alias]
        if not self.cache_prompt:
            args.append("--no-cache-prompt")
        return args


def resolve_model(model: str | os.PathLike[str]) -> tuple[Path, tuple[str, ...]]:
    """Path and served model ids for a registry name ("0.5b") or a GGUF path.

    Registry models answer to `local:<name>` (listed first by /v1/models, so it is the id) and to
    a descriptive id such as `qwen2.5-coder-0.5b-instruct`. llama.cpp serves one model and ignores
    the request's `model` field, so any id works; the aliases only make /v1/models readable.
    """
    from .assets import MODELS, ensure_model, get_spec  # not at top: see the module docstring

    if isinstance(model, str) and model in MODELS:
        spec = get_spec(model)
        return ensure_model(model), (f"local:{spec.name}", spec.model_id)
    path = Path(model).expanduser()
    if not path.is_file():
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"{model!r} is neither a known local model ({known}) nor a GGUF file")
    return path, (f"local:{path.stem}",)


def _serve(config: ServerConfig, announce: Callable[[str, str], None]) -> None:
    """Load the model, announce the address, block until asked to stop, then leave the process.

    Signal handlers are installed only after the model is loaded: xllamacpp installs its own
    SIGINT/SIGTERM handlers at that point (they stop its loop but not our main thread, which
    would then wait forever), and before that the default SIGTERM action, dying at once, is
    right. Leaving is always `os._exit`: the server keeps no state worth flushing, while
    destroying the native server or finalizing the interpreter under its threads can hang.
    """
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(config.model_path)
    params.hostnames = [config.host]
    params.port = config.port
    params.n_ctx = config.ctx_size
    params.n_parallel = config.parallel
    params.cpuparams.n_threads = config.threads
    params.cpuparams_batch.n_threads = config.threads
    params.model_alias = set(config.aliases)
    params.cache_prompt = config.cache_prompt
    params.verbosity = config.verbosity
    params.use_jinja = True

    stop = threading.Event()
    try:
        server = xllamacpp.Server(params)
    except KeyboardInterrupt:
        _leave(130)
    except Exception as exc:  # the reason is in the log lines above; name it once more
        print(f"skilltrain local server: {exc}", file=sys.stderr, flush=True)
        _leave(1)

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    code = 0
    try:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        url = str(server.listening_address).rstrip("/")
        model_id = sorted(config.aliases)[0] if config.aliases else "local"
        announce(url, model_id)
        while not stop.wait(0.5):
            pass
    except BaseException as exc:  # e.g. the reader of our stdout went away: still leave
        code = 130 if isinstance(exc, KeyboardInterrupt) else 1
        with contextlib.suppress(Exception):
            print(f"skilltrain local server: {exc!r}", file=sys.stderr, flush=True)
    _leave(code)


def _leave(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _arm_parent_death(parent_pid: int) -> None:
    """Ask Linux to SIGTERM us when the parent dies, then make sure it has not died already."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _watch_stdin() -> None:
    """Leave as soon as stdin reaches EOF: the parent closed it (stop) or died. Exits directly
    rather than by signal so it works even in the instant xllamacpp owns the signal handlers."""

    def watch() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(4096):
                pass
        _leave(0)

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m skilltrain.local.server",
        description="Serve one GGUF model over llama.cpp's OpenAI-compatible HTTP server.",
    )
    parser.add_argument("--model", required=True, help="registry name (0.5b, 1.5b) or GGUF path")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--ctx-size", type=int, default=DEFAULT_CTX)
    parser.add_argument("--threads", type=int, default=0, help="0 = all usable cores")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--alias", action="append", default=[])
    parser.add_argument("--no-cache-prompt", action="store_true")
    parser.add_argument("--verbosity", type=int, default=2)
    parser.add_argument("--parent-pid", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--watch-stdin", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the child process started by LocalServer (and usable by hand)."""
    args = _parse_args(argv)
    if args.parent_pid:
        _arm_parent_death(args.parent_pid)
    if args.watch_stdin:
        _watch_stdin()
    path = Path(args.model)
    aliases: tuple[str, ...] = (f"local:{path.stem}",)
    if not path.is_file():  # a registry name: needs the package, i.e. `python -m` use
        path, aliases = resolve_model(args.model)
    config = ServerConfig(
        model_path=path,
        aliases=tuple(args.alias) or aliases,
        host=args.host,
        port=args.port,
        ctx_size=args.ctx_size,
        threads=args.threads or default_threads(),
        parallel=args.parallel,
        cache_prompt=not args.no_cache_prompt,
        verbosity=args.verbosity,
    )

    def announce(url: str, model_id: str) -> None:
        print(READY_PREFIX + json.dumps({"url": url, "model_id": model_id, "pid": os.getpid()}),
              flush=True)  # fmt: skip

    _serve(config, announce)


if __name__ == "__main__":
    main()
