"""Real TCP connects, accepts and closes for the two-path test: run as root inside the test's own
network namespace.

    python tcp_workload.py GID SEED NAME...

Everything runs under group GID (the test's marker: the drawn metrics select it), each connection
with a command name from NAME... and a user id drawn by SEED, over IPv4, IPv6 and IPv4-mapped IPv6:
blocking and non-blocking connects that are accepted, then closed by either end first (or shut
down for writing first), and connects refused (no listener). It prints, as JSON, how many rows each
(comm, operation, retval, uid) should give, from what each call returned.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import random
import socket
import sys

PR_SET_NAME = 15
USERS = (0, 1000, 65534)
# (listener's family and address, client's family and the address it connects to)
ROUTES = ((socket.AF_INET, "127.0.0.1", socket.AF_INET, "127.0.0.1"),
          (socket.AF_INET6, "::1", socket.AF_INET6, "::1"),
          (socket.AF_INET, "127.0.0.1", socket.AF_INET6, "::ffff:127.0.0.1"))


def set_comm(name: str) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode(), 0, 0, 0)


def connect(sock: socket.socket, address: tuple) -> int:
    """What the connect() system call returned: 0 or the negative errno."""
    return -sock.connect_ex(address)


def run(gid: int, seed: int, names: list[str]) -> dict[str, int]:
    rng = random.Random(seed)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    counts: dict[str, int] = {}

    def row(name: str, operation: str, retval: int, uid: int) -> None:
        key = json.dumps([name[:15], operation, retval, uid])
        counts[key] = counts.get(key, 0) + 1

    for port in range(7000, 7000 + rng.randint(8, 14)):
        name, uid = rng.choice(names), rng.choice(USERS)
        listen_family, listen_addr, family, addr = rng.choice(ROUTES)
        case = rng.choice(["blocking", "non_blocking", "refused"])
        set_comm(name)
        os.setresuid(uid, uid, 0)   # the saved id lets the workload become root again below
        client = socket.socket(family, socket.SOCK_STREAM)
        if case == "refused":
            row(name, "connect", connect(client, (addr, port)), uid)   # -111: the RST ends it, no close row
            client.close()
        else:
            listener = socket.socket(listen_family, socket.SOCK_STREAM)
            listener.bind((listen_addr, port))
            listener.listen(4)
            client.setblocking(case == "blocking")
            retval = connect(client, (addr, port))
            assert retval in (0, -errno.EINPROGRESS), retval
            row(name, "connect", retval, uid)
            server, _ = listener.accept()
            row(name, "accept", server.fileno(), uid)
            first, second = rng.sample([client, server], 2)
            if rng.random() < 0.3:
                first.shutdown(socket.SHUT_WR)   # the close row is here, not at close()
            first.close()
            second.close()
            row(name, "close", 0, uid)
            row(name, "close", 0, uid)
            listener.close()
        os.setresuid(0, 0, 0)
    return counts


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])))
