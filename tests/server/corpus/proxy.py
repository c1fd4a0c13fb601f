"""A recording TCP proxy for the PostgreSQL wire protocol: clients connect to it, it forwards
every byte both ways to a real server and records the statements the clients run (simple
``Query`` messages, and ``Parse`` + ``Bind`` + ``Execute`` with the declared parameter types
and the bound values). Used by ``capture.py`` to build the differential corpus from what real
clients send; nothing here interprets or changes the traffic."""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

#: untyped requests a client may send before its StartupMessage (SSL, GSSAPI encryption)
_PRE_STARTUP = {80877103, 80877104}


@dataclass
class _Session:
    statements: dict[str, tuple[str, list[int]]] = field(default_factory=dict)
    portals: dict[str, dict[str, Any]] = field(default_factory=dict)


def _cstr(body: bytes, at: int) -> tuple[str, int]:
    end = body.index(b"\x00", at)
    return body[at:end].decode(), end + 1


class RecordingProxy:
    """``RecordingProxy(upstream_port).start()`` listens on ``port``; ``take()`` returns the
    statements recorded since the last call (each a dict: protocol, sql, types, params)."""

    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.port = int(self.listener.getsockname()[1])
        self.recorded: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def start(self) -> RecordingProxy:
        self.listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self.listener.close()

    def take(self) -> list[dict[str, Any]]:
        with self.lock:
            out, self.recorded = self.recorded, []
        return out

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()
            threading.Thread(target=self._frontend, args=(client, server), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _frontend(self, client: socket.socket, server: socket.socket) -> None:
        buffer = b""
        typed = False
        session = _Session()
        try:
            while data := client.recv(65536):
                server.sendall(data)
                buffer += data
                while True:
                    if not typed:
                        if len(buffer) < 8:
                            break
                        (length,) = struct.unpack("!I", buffer[:4])
                        if len(buffer) < length:
                            break
                        (code,) = struct.unpack("!I", buffer[4:8])
                        buffer = buffer[length:]
                        typed = code not in _PRE_STARTUP
                        continue
                    if len(buffer) < 5:
                        break
                    kind = buffer[:1]
                    (length,) = struct.unpack("!I", buffer[1:5])
                    if len(buffer) < 1 + length:
                        break
                    body, buffer = buffer[5:1 + length], buffer[1 + length:]
                    self._message(session, kind, body)
        except OSError:
            pass
        finally:
            try:
                server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.recorded.append(entry)

    def _message(self, session: _Session, kind: bytes, body: bytes) -> None:
        if kind == b"Q":
            sql, _ = _cstr(body, 0)
            self._record({"protocol": "simple", "sql": sql})
        elif kind == b"P":
            name, at = _cstr(body, 0)
            sql, at = _cstr(body, at)
            (count,) = struct.unpack("!H", body[at:at + 2])
            types = list(struct.unpack(f"!{count}I", body[at + 2:at + 2 + 4 * count]))
            session.statements[name] = (sql, types)
        elif kind == b"B":
            portal, at = _cstr(body, 0)
            statement, at = _cstr(body, at)
            (nformats,) = struct.unpack("!H", body[at:at + 2])
            formats = list(struct.unpack(f"!{nformats}H", body[at + 2:at + 2 + 2 * nformats]))
            at += 2 + 2 * nformats
            (nparams,) = struct.unpack("!H", body[at:at + 2])
            at += 2
            params: list[list[Any]] = []
            for i in range(nparams):
                (size,) = struct.unpack("!i", body[at:at + 4])
                at += 4
                fmt = formats[0] if len(formats) == 1 else (formats[i] if formats else 0)
                if size < 0:
                    params.append([fmt, None])
                    continue
                raw = body[at:at + size]
                at += size
                params.append([fmt, raw.decode() if fmt == 0 else raw.hex()])
            sql, types = session.statements.get(statement, ("", []))
            session.portals[portal] = {"protocol": "extended", "sql": sql, "types": types,
                                       "params": params}
        elif kind == b"E":
            portal, _ = _cstr(body, 0)
            entry = session.portals.get(portal)
            if entry is not None and entry["sql"]:
                self._record(dict(entry))
