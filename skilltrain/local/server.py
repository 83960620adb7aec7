"""Serve an embedded GGUF model over llama.cpp's OpenAI-compatible HTTP server.

`xllamacpp` runs llama.cpp's own C++ server inside a Python process. We run that process as a
child (this file's `main`) rather than in the caller: a native crash or a stuck model load must
never take the training run down with it, a child can always be killed, and xllamacpp's server
cannot always be destroyed in-process without hanging. The child lives in its own process group
(a terminal's Ctrl-C reaches only the caller, which then stops the child in order), asks Linux to
send it SIGTERM when its parent dies (`prctl(PR_SET_PDEATHSIG)`), and also exits when its stdin
pipe from the parent closes, which covers platforms without prctl. The parent waits for
readiness by reading a line the child prints once the model is loaded, then polling `/health`
and `/v1/models`.

    with LocalServer("0.5b") as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="local")
        client.chat.completions.create(model=srv.model_id, messages=[...])
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NoReturn

_READY = "SKILLTRAIN-LOCAL-SERVER-READY "
# The child loads this file by path instead of `python -m skilltrain.local.server`: importing the
# package would import all of skilltrain (slower, and one broken import elsewhere would take the
# server down). So this module imports only the standard library at top level.
_BOOTSTRAP = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_skilltrain_local_server', sys.argv[1])\n"
    "mod = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = mod\n"
    "spec.loader.exec_module(mod)\n"
    "mod.main(sys.argv[2:])\n"
)
_PR_SET_PDEATHSIG = 1
_TAIL_LINES = 200


class LocalServerError(RuntimeError):
    """The local model server could not start or died; the message carries its last output."""


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
    from .assets import MODELS, ensure_model, get_spec  # not at top: see _BOOTSTRAP

    if isinstance(model, str) and model in MODELS:
        spec = get_spec(model)
        return ensure_model(model), (f"local:{spec.name}", spec.model_id)
    path = Path(model).expanduser()
    if not path.is_file():
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"{model!r} is neither a known local model ({known}) nor a GGUF file")
    return path, (f"local:{path.stem}",)


class LocalServer:
    """A llama.cpp server for one model in a child process, stopped on exit from its context.

    The child dies with its parent even on SIGKILL (Linux), and it is stopped on normal exit,
    on exceptions and on KeyboardInterrupt: SIGTERM to its process group, then SIGKILL after
    `stop_timeout`. Start it from a thread that outlives it (normally the main thread or the
    event loop's thread): Linux delivers the parent-death signal when the *thread* that spawned
    the child exits.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "0.5b",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ctx_size: int = DEFAULT_CTX,
        threads: int | None = None,
        parallel: int = 1,
        cache_prompt: bool = True,
        startup_timeout: float = 180.0,
        stop_timeout: float = 10.0,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.host = host
        self.requested_port = port
        self.ctx_size = ctx_size
        self.threads = threads
        self.parallel = parallel
        self.cache_prompt = cache_prompt
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.verbose = verbose
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._ready_info: dict[str, Any] = {}
        self._ready = threading.Event()
        self._abort = threading.Event()
        self._finalizer: weakref.finalize | None = None
        self._url: str | None = None
        self._model_id: str | None = None
        self.model_path: Path | None = None

    # -- public surface -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Root URL of the server, e.g. http://127.0.0.1:41234."""
        if self._url is None:
            raise LocalServerError("the local server is not running; use it in a `with` block")
        return self._url

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL, e.g. http://127.0.0.1:41234/v1."""
        return self.url + "/v1"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def model_id(self) -> str:
        """The id /v1/models reports; send it as `model` (any string is accepted, though)."""
        if self._model_id is None:
            raise LocalServerError("the local server is not running")
        return self._model_id

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._url is not None

    def output_tail(self, lines: int = 40) -> str:
        """The child's last log lines, for error messages and debugging."""
        return "\n".join(list(self._tail)[-lines:])

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the child exits (or `timeout` passes); its exit code, or None."""
        proc = self._proc
        if proc is None:
            return None
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def start(self) -> LocalServer:
        """Start the child and block until it answers; idempotent while running."""
        if self._proc is not None:
            return self
        try:
            self._spawn(self._config())
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the child: close its stdin, SIGTERM its group, SIGKILL after stop_timeout."""
        self._abort.set()
        proc, self._proc = self._proc, None
        self._url = None
        self._model_id = None
        if proc is None:
            return
        _terminate(proc, self.stop_timeout)
        # Only now: if a second Ctrl-C interrupts the wait above, the finalizer still reaps the
        # child at interpreter exit.
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._reader is not None:
            self._reader.join(timeout=2.0)
            self._reader = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalServer:
        if self._proc is not None:
            return self
        # Joining the model file is slow disk work: off the loop. Spawning stays on the loop's
        # thread, which lives as long as the loop, because the parent-death signal is tied to
        # the spawning thread.
        config = await asyncio.to_thread(self._config)
        try:
            self._spawn(config)
            await asyncio.to_thread(self._wait_ready)
        except BaseException:
            self._abort.set()
            await asyncio.to_thread(self.stop)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        state = self._url or "stopped"
        return f"LocalServer({self.model!r}, {state})"

    # -- internals ------------------------------------------------------------------------------

    def _config(self) -> ServerConfig:
        if importlib.util.find_spec("xllamacpp") is None:  # fail here, not in the child's log
            raise LocalServerError(
                "the local model runtime xllamacpp is not installed; "
                "install with: pip install 'skilltrain[local]'"
            )
        path, aliases = resolve_model(self.model)
        self.model_path = path
        return ServerConfig(
            model_path=path,
            aliases=aliases,
            host=self.host,
            port=self.requested_port,
            ctx_size=self.ctx_size,
            threads=self.threads or default_threads(),
            parallel=self.parallel,
            cache_prompt=self.cache_prompt,
            verbosity=3 if self.verbose else 2,
        )

    def _spawn(self, config: ServerConfig) -> None:
        self._abort.clear()
        self._ready.clear()
        self._ready_info = {}
        self._tail.clear()
        cmd = [sys.executable, "-c", _BOOTSTRAP, str(Path(__file__).resolve()), *config.to_args()]
        cmd += ["--parent-pid", str(os.getpid()), "--watch-stdin"]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
            close_fds=True,
        )
        self._proc = proc
        self._finalizer = weakref.finalize(self, _terminate, proc, self.stop_timeout)
        assert proc.stdout is not None
        self._reader = threading.Thread(
            target=_drain, args=(proc.stdout, self._tail, self._ready_info, self._ready),
            name=f"skilltrain-local-server-{proc.pid}", daemon=True,
        )  # fmt: skip
        self._reader.start()

    def _wait_ready(self) -> None:
        proc = self._proc
        if proc is None:
            raise LocalServerError("the local server was stopped during startup")
        deadline = time.monotonic() + self.startup_timeout
        while not self._ready.wait(0.1):
            self._check_alive(proc, "while loading the model")
            self._check_deadline(deadline)
        url = str(self._ready_info["url"]).rstrip("/")
        while not _http_ok(url + "/health"):
            self._check_alive(proc, "before answering /health")
            self._check_deadline(deadline)
            time.sleep(0.1)
        try:
            data = _get_json(url + "/v1/models").get("data") or [{}]
            model_id = data[0].get("id")
        except (urllib.error.URLError, OSError, ValueError, AttributeError):
            model_id = None
        self._model_id = str(model_id or self._ready_info.get("model_id") or "local")
        self._url = url

    def _check_alive(self, proc: subprocess.Popen[bytes], when: str) -> None:
        if self._abort.is_set():
            raise LocalServerError("the local server was stopped during startup")
        code = proc.poll()
        if code is None:
            return
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        raise LocalServerError(
            f"the local model server exited with code {code} {when} "
            f"(model {self.model_path}). Last output:\n{self.output_tail() or '(none)'}"
        )

    def _check_deadline(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise LocalServerError(
                f"the local model server did not become ready within {self.startup_timeout:.0f}"
                f" s (model {self.model_path}). Last output:\n{self.output_tail() or '(none)'}"
            )


def _drain(
    stream: IO[bytes],
    tail: collections.deque[str],
    ready_info: dict[str, Any],
    ready: threading.Event,
) -> None:
    """Read the child's output until EOF: keep a bounded tail for error messages (never block
    the child on a full pipe) and pick out the readiness line."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if line.startswith(_READY):
            with contextlib.suppress(ValueError):
                ready_info.update(json.loads(line[len(_READY) :]))
                ready.set()
            continue
        tail.append(line)
    stream.close()


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop a server child and its process group: EOF on stdin, SIGTERM, then SIGKILL."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    if proc.poll() is not None:
        return
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5.0) as resp:
        data = json.loads(resp.read().decode("utf-8"))
    return data if isinstance(data, dict) else {}


# -- the foreground command and the child process ------------------------------------------------


def serve_forever(
    name: str, host: str = "127.0.0.1", port: int = 8080, *, threads: int | None = None
) -> None:
    """Serve a local model in the foreground until Ctrl-C (for `skilltrain serve`).

    The server still runs in a child: Ctrl-C then only has to stop a process, never to unwind
    native server threads inside this one (destroying xllamacpp's server while a request is in
    flight was seen to hang with the GIL held). Returns normally once the server is stopped;
    raises LocalServerError if the server dies on its own.
    """
    try:
        with LocalServer(name, host=host, port=port, threads=threads) as srv:
            print(
                f"Serving {name} at {srv.base_url} as model {srv.model_id!r} "
                f"(pid {srv.pid}). Press Ctrl-C to stop.",
                flush=True,
            )
            code = srv.wait()
            raise LocalServerError(
                f"the local model server exited with code {code}. "
                f"Last output:\n{srv.output_tail() or '(none)'}"
            )
    except KeyboardInterrupt:
        print("Stopped.", flush=True)


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
        print(_READY + json.dumps({"url": url, "model_id": model_id, "pid": os.getpid()}),
              flush=True)  # fmt: skip

    _serve(config, announce)


if __name__ == "__main__":
    main()
