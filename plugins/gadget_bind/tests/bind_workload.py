"""Real binds for the two-path test: run as root inside the test's own network namespace.

    python bind_workload.py GID SEED NAME...

Every bind runs under group GID (the test's marker: the drawn metrics select it), with a command
name from NAME... and a user id drawn by SEED. It binds TCP, UDP and UDP-Lite sockets over IPv4 and
IPv6, some of which succeed, some fail (-98 in use, -13 a low port as a user, -99 an address not
here, -22 bound twice), some on a device (SO_BINDTODEVICE). It prints, as JSON, how many binds each
(comm, proto, retval, uid) had, from what each bind() returned.
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
FAMILIES = {socket.AF_INET: ("127.0.0.1", "10.123.0.1"), socket.AF_INET6: ("::1", "2001:db8::1")}
PROTOCOLS = (("TCP", socket.SOCK_STREAM, 0), ("UDP", socket.SOCK_DGRAM, 0), ("UDPLITE", socket.SOCK_DGRAM, 136))


def set_comm(name: str) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode(), 0, 0, 0)


def bind(sock: socket.socket, address: tuple) -> int:
    """What the bind() system call returned: 0 or the negative errno."""
    try:
        sock.bind(address)
    except OSError as e:
        return -(e.errno or errno.EIO)
    return 0


def run(gid: int, seed: int, names: list[str]) -> dict[str, int]:
    rng = random.Random(seed)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    counts: dict[str, int] = {}
    port = 20000
    for _ in range(rng.randint(12, 20)):
        name, uid = rng.choice(names), rng.choice(USERS)
        family = rng.choice(list(FAMILIES))
        proto, kind, number = rng.choice(PROTOCOLS)
        local, elsewhere = FAMILIES[family]
        case = rng.choice(["ok", "any_port", "in_use", "low_port", "not_here", "twice", "device"])
        port += 1
        set_comm(name)
        os.setresuid(uid, uid, 0)   # the saved id lets the workload become root again below
        socks = [socket.socket(family, kind, number)]
        results = []
        if case == "in_use":
            socks.append(socket.socket(family, kind, number))
            results += [bind(socks[0], (local, port)), bind(socks[1], (local, port))]
        elif case == "twice":
            results += [bind(socks[0], (local, port)), bind(socks[0], (local, port + 1))]
        elif case == "device":
            os.setresuid(0, 0, 0)   # SO_BINDTODEVICE needs CAP_NET_RAW
            socks[0].setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
            os.setresuid(uid, uid, 0)
            results.append(bind(socks[0], (local, port)))
        else:
            address = {"ok": local, "any_port": local, "low_port": local, "not_here": elsewhere}[case]
            results.append(bind(socks[0], (address, {"any_port": 0, "low_port": 80}.get(case, port))))
        for sock in socks:
            sock.close()
        os.setresuid(0, 0, 0)
        for retval in results:
            key = json.dumps([name[:15], proto, retval, uid])
            counts[key] = counts.get(key, 0) + 1
    return counts


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])))
