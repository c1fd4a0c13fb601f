"""Even connections across worker processes: a worker that has more sessions hands a new one on.

With ``workers > 1`` every worker accepts on its own ``SO_REUSEPORT`` socket and the kernel
picks the worker by a hash of the client's address: eight connections land 4/4 only about a
quarter of the time, and 2/6 about as often — then one worker's core is saturated while the
other idles, and a pool of long-lived connections (pgbench, a service's connection pool) stays
that way for its whole life. PostgreSQL has no such problem (a process per connection).

So after reading a client's StartupMessage — before answering anything, and only for a
connection without TLS — a worker compares the session counts every worker publishes in a
small shared array: when another has fewer sessions than it has, it passes the socket (a
duplicate of its descriptor, ``SCM_RIGHTS`` over a Unix datagram socket made before the
workers were forked) with the StartupMessage's bytes to that worker and forgets it. The
receiving worker adopts the socket as if it had accepted it and reads the StartupMessage
from those bytes: the client notices nothing. Counts are published without locks and read
a moment late, so the spread is even up to one session, which is what matters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger("fsql.server")

#: the largest StartupMessage passed along (what the server accepts: MAX_STARTUP)
_MAX_HANDOFF = 10_004


class Balancer:
    """One worker's side: its index, everyone's connection counts, its inbox, the others'."""

    def __init__(self, index: int, loads: Any, inbox: socket.socket,
                 outboxes: list[socket.socket | None]):
        self.index = index
        #: a multiprocessing RawArray of ints shared by all workers: connections per worker
        self.loads = loads
        #: where other workers hand connections to this one
        self.inbox = inbox
        #: outboxes[i]: writing here hands a connection to worker i (None: this worker);
        #: non-blocking, so a worker that does not keep up never stalls this one's loop
        self.outboxes = outboxes
        for outbox in outboxes:
            if outbox is not None:
                outbox.setblocking(False)
        self.handed_off = 0
        self.adopted = 0

    def publish(self, connections: int) -> None:
        self.loads[self.index] = connections

    def target(self) -> int | None:
        """The worker with the fewest connections when it would still have fewer than this
        one after taking one more (this worker's count includes the connection at hand)."""
        loads = self.loads
        mine = loads[self.index]
        best = min(range(len(loads)), key=loads.__getitem__)
        if best == self.index or loads[best] + 1 >= mine:
            return None
        return best

    def hand_off(self, target: int, sock: socket.socket, startup: bytes) -> bool:
        """Pass ``sock`` and the StartupMessage read from it to worker ``target``. False when
        that failed (the caller then serves the connection itself)."""
        if len(startup) > _MAX_HANDOFF:
            return False
        fd = os.dup(sock.fileno())
        try:
            outbox = self.outboxes[target]
            if outbox is None:
                return False
            socket.send_fds(outbox, [startup], [fd])
        except OSError as exc:
            log.warning("could not hand a connection to worker %d: %s", target, exc)
            return False
        finally:
            os.close(fd)
        self.loads[target] += 1  # until that worker publishes its own count
        self.handed_off += 1
        return True

    def listen(self, adopt: Callable[[socket.socket, bytes], Any]) -> None:
        """Adopt connections handed to this worker: ``adopt(sock, startup bytes)``."""
        inbox = self.inbox
        inbox.setblocking(False)

        def readable() -> None:
            while True:
                try:
                    data, fds, _flags, _address = socket.recv_fds(inbox, _MAX_HANDOFF, 4)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    log.warning("could not receive a connection from another worker: %s", exc)
                    return
                for fd in fds:
                    sock = socket.socket(fileno=fd)
                    sock.setblocking(False)
                    self.adopted += 1
                    adopt(sock, data)

        asyncio.get_running_loop().add_reader(inbox.fileno(), readable)


def inboxes_for(workers: int) -> list[tuple[socket.socket, socket.socket]]:
    """One Unix datagram socket pair per worker: (its inbox, the end others write to)."""
    return [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(workers)]
