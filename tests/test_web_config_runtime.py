"""`--web-config-file` changed while ig runs, as the exporter-toolkit applies it (docs/security.md):
every request is checked against the file as it is now, a file that cannot be applied fails
closed, and a port keeps the protocol it started with. Real ig processes, real TLS.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import time
from pathlib import Path

import bcrypt
import pytest

from tests.fixtures.certs import CertificateAuthority
from tests.fixtures.web_client import basic, client_context
from tests.synthetic import SYNTH

PASSWORD = "correct horse"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
USERS = f"basic_auth_users:\n  alice: {HASH}\n  bob: {HASH}\n"
ALICE, BOB = basic("alice", PASSWORD), basic("bob", PASSWORD)
CANNOT_APPLY = "web config cannot be applied"  # the start of ig's one log line per change


@pytest.fixture
def pki(tmp_path):
    ca = CertificateAuthority(tmp_path)
    ca.server()
    return ca


def log(ig) -> str:
    """ig's output with its log lines unwrapped (the console wraps them at its width)."""
    return " ".join(ig.output().split())


def replace_file(path: Path, text: str) -> None:
    """Write beside and move in place, as an operator's tooling or the kubelet does."""
    staged = path.with_name(path.name + ".new")
    staged.write_text(text)
    os.replace(staged, path)


class Connection:
    """One connection kept alive across requests. http.client silently opens a new one when the
    server closed it, so every request checks that the socket is still the first one."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None) -> None:
        if context is None:
            self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        else:
            self.http = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        self.sock = None

    def get(self, headers: dict | None = None) -> tuple[int, bytes]:
        self.http.request("GET", "/metrics", headers=headers or {})
        response = self.http.getresponse()
        body = response.read()
        self.sock = self.sock or self.http.sock
        assert self.http.sock is self.sock, "ig closed the kept-alive connection"
        return response.status, body

    def close(self) -> None:
        self.http.close()


def once(port: int, context: ssl.SSLContext | None = None, headers: dict | None = None) -> int:
    """The status of one request on a new connection."""
    conn = Connection(port, context)
    try:
        return conn.get(headers)[0]
    finally:
        conn.close()


def refused_handshake(port: int, context: ssl.SSLContext) -> bool:
    """Whether a new TLS connection fails its handshake with ig's alert (the toolkit's answer when
    it has no usable config)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            context.wrap_socket(raw, server_hostname="localhost").close()
        except ssl.SSLError as exc:
            return "INTERNAL_ERROR" in str(exc)
    return False


def serve(run_ig, pki, text: str, tls: bool):
    """ig with `text` as its web config (beside the certificates) and a kept-alive connection to
    it that was answered 200: (ig, the file, the connection, the client's TLS context)."""
    config = pki.dir / "web.yml"
    config.write_text(text)
    context = client_context(pki) if tls else None
    ig = run_ig(SYNTH, "--web-config-file", str(config), headers=ALICE,
                **({"scheme": "https", "ssl_context": context} if tls else {}))
    conn = Connection(ig.port, context)
    assert conn.get(ALICE)[0] == 200
    return ig, config, conn, context


def test_a_removed_user_is_refused_on_an_open_connection(run_ig, synth, pki):
    ig, config, conn, _ = serve(run_ig, pki, USERS, tls=False)
    replace_file(config, f"basic_auth_users:\n  bob: {HASH}\n")
    status, body = conn.get(ALICE)
    assert status == 401, body
    assert conn.get(BOB)[0] == 200  # the same connection still serves the user who stays
    ig.headers = BOB
    assert ig.value("ig_web_config_reloads_total", result="success") == 1


@pytest.mark.parametrize("tls, broken", [
    (False, "basic_auth_users: [\n"),                                 # not YAML
    (True, TLS + "  min_version: [TLS12]\n" + USERS),                 # a value of the wrong YAML type
    (True, TLS.replace("server.crt", "missing.crt") + USERS),        # a certificate that cannot be read
], ids=["bad-yaml", "wrong-type", "unreadable-cert"])
def test_an_invalid_file_fails_closed_until_it_is_valid(run_ig, synth, pki, tls, broken):
    valid = (TLS if tls else "") + USERS
    ig, config, conn, context = serve(run_ig, pki, valid, tls)

    replace_file(config, broken)
    status, body = conn.get(ALICE)  # the users of the previous file are not in force any more
    assert status == 500 and b"see ig's log" in body, (status, body)
    for _ in range(3):
        if tls:
            assert refused_handshake(ig.port, context)
        else:
            assert once(ig.port, headers=ALICE) == 500
    assert log(ig).count(CANNOT_APPLY) == 1, ig.output()

    replace_file(config, broken + "# edited again\n")  # another change: one more line
    assert conn.get(ALICE)[0] == 500
    assert log(ig).count(CANNOT_APPLY) == 2, ig.output()

    replace_file(config, valid)
    assert conn.get(ALICE)[0] == 200
    assert once(ig.port, context, ALICE) == 200
    assert ig.value("ig_web_config_reloads_total", result="failure") == 2
    assert ig.value("ig_web_config_reloads_total", result="success") == 1


def test_a_tls_port_stays_tls_until_a_restart(run_ig, synth, pki):
    ig, config, conn, context = serve(run_ig, pki, TLS, tls=True)

    replace_file(config, USERS)  # tls_server_config removed
    assert conn.get(ALICE)[0] == 500
    assert refused_handshake(ig.port, context)
    assert once(ig.port, headers=ALICE) == 400  # plain HTTP is told that this is a TLS port
    assert log(ig).count("this port started with TLS and stays TLS") == 1, ig.output()

    replace_file(config, TLS)
    assert conn.get()[0] == 200
    assert once(ig.port, context) == 200


def test_a_plain_port_does_not_become_tls(run_ig, synth, pki):
    ig, config, conn, _ = serve(run_ig, pki, USERS, tls=False)

    replace_file(config, TLS + USERS)  # tls_server_config added
    assert conn.get(ALICE)[0] == 500
    assert once(ig.port, headers=ALICE) == 500  # neither plain HTTP with the new users...
    with socket.create_connection(("127.0.0.1", ig.port), timeout=2) as raw, pytest.raises(OSError):
        client_context(pki).wrap_socket(raw, server_hostname="localhost")  # ...nor TLS (read as a request head)
    assert log(ig).count("this port started as plain HTTP") == 1, ig.output()

    replace_file(config, USERS)
    assert conn.get(ALICE)[0] == 200


@pytest.mark.parametrize("special", ["fifo", "device"])
def test_a_certificate_that_is_not_a_regular_file_is_refused(run_ig, synth, pki, tmp_path, special):
    """A FIFO blocks whoever opens it; opening a device can have effects. Neither is opened: the
    connections that exist and new ones are answered at once (their requests fail)."""
    ig, config, conn, context = serve(run_ig, pki, TLS, tls=True)

    good = pki.dir / "server.crt.good"
    os.link(pki.dir / "server.crt", good)
    if special == "fifo":
        os.mkfifo(tmp_path / "fifo")
        os.replace(tmp_path / "fifo", pki.dir / "server.crt")
    else:
        os.symlink("/dev/null", tmp_path / "device")
        os.replace(tmp_path / "device", pki.dir / "server.crt")
    assert refused_handshake(ig.port, context)  # within the socket's 10 s time-out: nothing stuck in an open()
    assert conn.get()[0] == 500
    assert "is not a regular file" in log(ig)

    os.replace(good, pki.dir / "server.crt")
    assert conn.get()[0] == 200
    assert ig.value("ig_web_config_reloads_total", result="failure") == 1


def test_a_file_that_never_answers_fails_closed_at_the_time_limit(run_ig, synth, pki, stalled_file):
    """A read that never returns (a hung network file system) holds one checking thread, not the
    port: requests fail closed after the time limit, and are served once the files answer again."""
    ig, config, conn, context = serve(run_ig, pki, TLS, tls=True)
    good = pki.dir / "server.crt.good"
    os.link(pki.dir / "server.crt", good)
    (pki.dir / "stalled-link").symlink_to(stalled_file.path)
    os.replace(pki.dir / "stalled-link", pki.dir / "server.crt")
    assert refused_handshake(ig.port, context)  # within the socket's 10 s time-out
    assert conn.get()[0] == 500
    assert stalled_file.reads >= 1
    assert log(ig).count("took longer than 2 s") == 1, ig.output()

    stalled_file.release()  # the stalled read fails (ENOTCONN): the check completes
    os.replace(good, pki.dir / "server.crt")
    deadline = time.monotonic() + 30
    while conn.get()[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert conn.get()[0] == 200
    assert ig.value("ig_web_config_reloads_total", result="timeout") == 1
