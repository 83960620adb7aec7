"""Serve an embedded GGUF model over llama.cpp's OpenAI-compatible HTTP server.

`xllamacpp` runs llama.cpp's own C++ server inside a Python process. We run that process as a
child rather than in the caller: a native crash or a stuck model load must never take the
training run down with it, a child can always be killed, and xllamacpp's server cannot always be
destroyed in-process without hanging. The child lives in its own process group
(a terminal's Ctrl-C reaches only the caller, which then stops the child in order), asks Linux to
send it SIGTERM when its parent dies (`prctl(PR_SET_PDEATHSIG)`), and also exits when its stdin
pipe from the parent closes, which covers platforms without prctl. The parent waits for
readiness by reading a line the child prints once the model is loaded, then polling `/health`
and `/v1/models`.

This module is the caller's handle (`LocalServer`, `serve_forever`); what runs in the child is
`child.py`, and the process plumbing between the two (spawn by path, output, signals, HTTP
probes) is `process.py`.

    with LocalServer("0.5b") as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="local")
        client.chat.completions.create(model=srv.model_id, messages=[...])
"""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import os
import subprocess
import threading
import time
import urllib.error
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

# DEFAULT_CTX, ServerConfig, default_threads, resolve_model and main were defined here before the
# child's code moved to child.py; they stay importable from this module.
from .child import DEFAULT_CTX, ServerConfig, default_threads, main, resolve_model
from .process import drain, get_json, http_ok, spawn, terminate

_TAIL_LINES = 200


class LocalServerError(RuntimeError):
    """The local model server could not start or died; the message carries its last output."""


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
        terminate(proc, self.stop_timeout)
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
        proc = spawn(config)
        self._proc = proc
        self._finalizer = weakref.finalize(self, terminate, proc, self.stop_timeout)
        assert proc.stdout is not None
        self._reader = threading.Thread(
            target=drain, args=(proc.stdout, self._tail, self._ready_info, self._ready),
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
        while not http_ok(url + "/health"):
            self._check_alive(proc, "before answering /health")
            self._check_deadline(deadline)
            time.sleep(0.1)
        try:
            data = get_json(url + "/v1/models").get("data") or [{}]
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


# -- the foreground command ---------------------------------------------------------------------


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


if __name__ == "__main__":
    main()  # `python -m skilltrain.local.server`, as before the child moved to child.py
