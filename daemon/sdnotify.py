"""systemd's notify protocol (sd_notify): READY=1, WATCHDOG=1, STATUS=, STOPPING=1."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("deneva.sdnotify")


class Notifier:
    """Sends datagrams to $NOTIFY_SOCKET; does nothing when not under systemd."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        environ = os.environ if environ is None else environ
        usec: int | None = None
        pid_ok = environ.get("WATCHDOG_PID", str(os.getpid())) == str(os.getpid())
        if environ.get("WATCHDOG_USEC", "").isdigit() and pid_ok:
            usec = int(environ["WATCHDOG_USEC"]) or None
        return cls(environ.get("NOTIFY_SOCKET") or None, usec)

    @property
    def watchdog_interval(self) -> float | None:
        """How often to send WATCHDOG=1: half of what systemd allows."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2_000_000

    def send(self, *fields: str) -> None:
        if not self.address:
            return
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block the event loop on a receiver that is not reading.
                sock.setblocking(False)
                sock.sendto("\n".join(fields).encode(), target)
        except BlockingIOError:
            log.debug("sd_notify receiver is not reading; message dropped", extra={"fields": fields[:1]})
        except OSError as exc:
            log.warning("sd_notify failed", extra={"error": str(exc)})

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def stopping(self, status: str = "draining") -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def reloading(self) -> None:
        self.send("RELOADING=1")
