"""A free TCP port for torchrun's rendezvous: fixed ports collide when test runs overlap."""

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
