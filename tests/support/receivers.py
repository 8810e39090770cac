"""An HTTP receiver for outbound notifications, served on a real port by `processes.ServedApp`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response


@dataclass
class Receiver:
    """Answers the queued statuses in turn (then 200) and keeps what it received."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.received.append((dict(request.headers), body))
            status = self.statuses.pop(0) if self.statuses else 200
        return Response(status_code=status)
