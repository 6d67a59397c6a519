"""`user@host[:port]` as typed on the command line, parsed once and checked."""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgex.errors import UsageError

_SPEC = re.compile(r"^(?:(?P<user>[^-@\s/][^@\s/]*)@)?"  # user@ (optional)
                   r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^-@\s:/\[\]][^@\s:/\[\]]*))"  # [v6] or a name / v4
                   r"(?::(?P<port>\d+))?$")


@dataclass(frozen=True)
class RemoteTarget:
    """Where the device is. `port` None means ssh's default (or the user's ssh config)."""

    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, spec: str) -> RemoteTarget:
        match = _SPEC.match(spec.strip())
        if not match or spec.strip().startswith("-"):
            raise UsageError(f"--remote {spec!r} is not user@host[:port]",
                             "Write it like pi@raspberrypi.local or root@127.0.0.1:2222 ([::1]:22 for IPv6)")
        port = int(match["port"]) if match["port"] else None
        if port is not None and not 0 < port < 65536:
            raise UsageError(f"--remote {spec!r} has port {port} outside 1-65535", "Fix the port number.")
        return cls(host=match["ipv6"] or match["host"], user=match["user"], port=port)

    @property
    def destination(self) -> str:
        """What ssh takes as its destination argument (the port goes in -p)."""
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.user}@{host}" if self.user else host
        return f"{text}:{self.port}" if self.port else text
