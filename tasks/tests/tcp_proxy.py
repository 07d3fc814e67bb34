"""A TCP proxy in front of PostgreSQL that a test can cut and restore (the shared server is never
stopped)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`. `cut()` resets every connection and refuses new
    ones (as a database that went away); `blackhole()` resets every connection and accepts new
    ones that never get an answer (as a host that vanished behind a firewall: a connection
    attempt hangs until the client's connect timeout); `restore()` forwards again.

    `cut_at(marker, deliver=…)` cuts at a chosen statement: a commit in doubt, on demand.

    (Packets dropped on an established connection are left to TCP_USER_TIMEOUT, which needs
    packet filtering to reproduce and is not simulated here.)"""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode = "forward"
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._stopped = False
        self._trap: list | None = None  # [marker, deliver, event, occurrences to let pass]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        return listener

    def _accept_loop(self) -> None:
        while not self._stopped:
            listener = self._listener
            try:
                client, _ = listener.accept()
            except OSError:
                if self._stopped:
                    return
                # Cut: the listener is closed until restore() listens again. Not a test of
                # self.mode: restore() may have ended it since this listener was taken.
                threading.Event().wait(0.05)
                continue
            if self.mode == "cut":
                _reset(client)
            elif self.mode == "blackhole":
                self._track(client)
            else:
                threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.add(sock)

    def _pipe(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _reset(client)
            return
        upstream.settimeout(None)
        self._track(client)
        self._track(upstream)
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        delivered = None  # the trap whose statement was delivered: its reply is dropped
        try:
            while self.mode == "forward":
                for key, _ in selector.select(timeout=0.2):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    trap = self._trap
                    if key.fileobj is client and trap and trap[0] in data and trap[3]:
                        trap[3] -= 1
                    elif key.fileobj is client and trap and trap[0] in data:
                        self._trap = None
                        if not trap[1]:
                            self._sprung(trap)
                            return
                        delivered = trap
                    elif key.fileobj is upstream and delivered:
                        self._sprung(delivered)
                        return
                    key.data.sendall(data)
        except OSError:
            pass
        finally:
            selector.close()
            if self.mode != "blackhole":
                _reset(client)
                _reset(upstream)

    def cut_at(self, marker: bytes, *, deliver: bool, skip: int = 0) -> threading.Event:
        """Cut (as `cut()`) when a client sends bytes containing `marker` (after letting `skip`
        such sends pass): before they reach the server (`deliver=False`), or once the server has
        answered them, the answer dropped (`deliver=True`: the statement ran, its client never
        learns how). The event is set then."""
        sprung = threading.Event()
        self._trap = [marker, deliver, sprung, skip]
        return sprung

    def _sprung(self, trap: list) -> None:
        self.cut()
        trap[2].set()

    def cut(self) -> None:
        self.mode = "cut"
        # Wakes the accept() blocked on it: until that returns, the port stays bound and
        # restore() could not listen on it again.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._drop_all()

    def blackhole(self) -> None:
        self.mode = "blackhole"
        self._drop_all()

    def restore(self) -> None:
        if self.mode == "cut":
            self._listener = self._listen(self.port)
        self._drop_all()
        self.mode = "forward"

    def close(self) -> None:
        self._stopped = True
        self._listener.close()
        self._drop_all()

    def _drop_all(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, set()
        for sock in connections:
            _reset(sock)


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        # SO_LINGER 0: close with a RST, as a crashed server or a cut network path does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
