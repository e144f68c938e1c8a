"""Runs one documentation example (its code on stdin) with the network cut off.

Usage: python example_runner.py WHERE < code. Connections and name lookups are allowed
only to this machine (127.0.0.0/8, ::1, localhost); any other attempt fails and is
reported on stderr with BLOCKED, which the test turns into a failure even when the
example swallowed the error. An example whose import fails because a package is not
installed exits with MISSING_EXIT and names the package on stderr after MISSING."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

BLOCKED = "edgembed-docs: blocked network access to"
MISSING = "edgembed-docs: missing package"
MISSING_EXIT = 3


def _local(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def cut_network() -> None:
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(target: object) -> None:
        print(f"{BLOCKED} {target!r}", file=sys.stderr, flush=True)
        raise OSError(f"network access blocked in documentation examples: {target!r}")

    def check(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            refuse(address)

    def connect(self: socket.socket, address: object) -> None:
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    def lookup(real: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(host: object, *args: object, **kwargs: object) -> Any:
            if host is not None and not _local(host):
                refuse(host)
            return real(host, *args, **kwargs)
        return guarded

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        setattr(socket, name, lookup(getattr(socket, name)))


def main() -> int:
    where = sys.argv[1]
    code = sys.stdin.read()
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    cut_network()
    try:
        exec(compile(code, where, "exec"), {"__name__": "__main__"})
    except ImportError as exc:
        top = (exc.name or "").split(".")[0]
        if top and importlib.util.find_spec(top) is None:
            print(f"{MISSING} {top}: {exc}", file=sys.stderr)
            return MISSING_EXIT
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
