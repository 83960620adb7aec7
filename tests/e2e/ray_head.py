"""A real Ray head for the tests: `ray start --head --block` on 127.0.0.1, in a temp folder of
its own, with a token of its own, stopped (SIGTERM to the blocking `ray start`, which stops every
process it started) when the tests are done.

Clients reach it with `env` added to their environment: the token's path and token mode (a
driver given an address sends the token only in token mode), and Ray's switch that keeps a
local cluster on loopback (see skilltrain/ray_cluster.py)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class RayHead:
    def __init__(self, num_cpus: int = 2):
        # Ray's unix sockets live under the temp folder: keep its path short (108-byte limit).
        self.root = Path(tempfile.mkdtemp(prefix="st-ray-", dir="/tmp"))
        token = self.root / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
                    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        self.log = self.root / "head.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
                 "--node-ip-address", "127.0.0.1", "--port", "0", "--include-dashboard",
                 "false", "--disable-usage-stats", "--temp-dir", str(self.root),
                 "--num-cpus", str(num_cpus), "--block"],
                env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        marker = self.root / "ray_current_cluster"
        deadline = time.monotonic() + 90
        while not marker.exists() or not marker.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ray head did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        self.address = marker.read_text().strip()

    def files_containing(self, needle: str) -> list[Path]:
        """Files under the head's folder (its session logs included) that contain `needle`."""
        found = []
        for path in self.root.rglob("*"):
            try:
                if path.is_file() and not path.is_socket() and needle.encode() in \
                        path.read_bytes():
                    found.append(path)
            except OSError:
                continue
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def _host(hex_addr: str) -> str:
    """/proc/net/tcp{,6}'s address, as text: IPv4 and IPv6 (32-bit words, little-endian)."""
    raw = bytes.fromhex(hex_addr)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return ".".join(str(b) for b in words)
    if words[:12] == b"\0" * 10 + b"\xff\xff":
        return "::ffff:" + ".".join(str(b) for b in words[12:])
    return ":".join(words[i:i + 2].hex() for i in range(0, 16, 2))


def ray_listeners() -> list[tuple[str, int, str]]:
    """(host, port, process) of every listening TCP socket held by a Ray process (its command
    line names ray: gcs_server, raylet, ray:: workers, Ray's Python agents)."""
    owners: dict[str, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "ray" not in cmd:
                continue
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    owners[link[8:-1]] = cmd[:80]
        except OSError:
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in owners:  # 0A: LISTEN
                addr, port = local.rsplit(":", 1)
                found.append((_host(addr), int(port, 16), owners[inode]))
    return found


def loopback(host: str) -> bool:
    ip = ipaddress.ip_address(host)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback
