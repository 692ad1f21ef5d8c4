"""`--web-config-file`: TLS, client certificates and basic auth, with real Prometheus, curl and promtool.

ig counts execs with its real trace exec gadget (eBPF); certificates are made here. The same file
is checked by promtool's `check web-config` (the exporter-toolkit's own validation).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import bcrypt
import pytest
import yaml

from tests.fixtures.certs import CertificateAuthority, serial_of
from tests.fixtures.web_client import basic, client_context
from tests.fixtures.igrun import IG
from tests.fixtures.prometheus import write_config
from tests.fixtures.requirements import need_binary
from tests.synthetic import SYNTH

PASSWORD = "correct horse"


def exec_config(comm: str) -> str:
    return ("metrics_name: web\nmetrics:\n  - name: executed\n    type: counter\n    category: trace\n"
            f"    gadget: exec\n    selector: [\"comm:{comm}\"]\n")


@pytest.fixture
def workload(tmp_path):
    """A binary with a name of its own: `run(n)` execs it n times; its comm is `name`."""
    name = "igweb" + uuid.uuid4().hex[:8]
    binary = tmp_path / name
    shutil.copy("/bin/true", binary)

    class Workload:
        comm = name

        @staticmethod
        def run(n: int) -> None:
            for _ in range(n):
                subprocess.run([str(binary)], check=True)

    return Workload


@pytest.fixture
def pki(tmp_path):
    ca = CertificateAuthority(tmp_path)
    ca.server()
    ca.issue("client", "prometheus", dns=("prometheus",))
    return ca


def web_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def promtool_check_web_config(path: Path) -> None:
    result = subprocess.run([need_binary("promtool"), "check", "web-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_over_tls_with_basic_auth(require_bpf, run_ig, prometheus_server, pki, workload, tmp_path):
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    # relative paths: read from the file's directory, as the exporter-toolkit does
    config = web_config(tmp_path, f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                                  f"basic_auth_users:\n  prom: {hashed}\n")
    promtool_check_web_config(config)
    ig = run_ig(exec_config(workload.comm), "--host", "--web-config-file", str(config),
                scheme="https", ssl_context=client_context(pki), headers=basic("prom", PASSWORD))
    assert f"Publishing metrics... (https://{ig.address}/metrics)" in ig.output()
    workload.run(7)
    assert ig.wait_for("executed_total", 7) == 7

    prom = prometheus_server(write_config(tmp_path / "prometheus.yml", ig.address, scheme="https",
                                          tls_config={"ca_file": pki.cert, "server_name": "localhost"},
                                          basic_auth={"username": "prom", "password": PASSWORD}))
    result = prom.wait_for("executed_total", lambda r: r and r[0]["value"][1] == "7")
    assert result and result[0]["value"][1] == "7", result
    workload.run(3)
    result = prom.wait_for("executed_total", lambda r: r and r[0]["value"][1] == "10")
    assert result[0]["value"][1] == "10", result

    # the same ig, asked with a wrong password by another Prometheus: refused, with no detail
    wrong = prometheus_server(write_config(tmp_path / "wrong.yml", ig.address, scheme="https",
                                           tls_config={"ca_file": pki.cert},
                                           basic_auth={"username": "prom", "password": "wrong"}))
    target = wrong.wait_target(lambda t: t["health"] == "down")
    assert target["health"] == "down" and "401" in target["lastError"], target


@pytest.mark.parametrize("credentials", [None, ("prom", "wrong"), ("nobody", PASSWORD), ("prom", "")])
def test_wrong_credentials_get_401_without_detail(run_ig, synth, pki, tmp_path, credentials):
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    config = web_config(tmp_path, f"basic_auth_users:\n  prom: {hashed}\n")
    ig = run_ig(SYNTH, "--web-config-file", str(config), headers=basic("prom", PASSWORD))
    request = urllib.request.Request(ig.url, headers=basic(*credentials) if credentials else {})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"] == "Basic"
    assert refused.value.read() == b"Unauthorized\n"
    assert "ig_info" in ig.text()  # the right password still works


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([need_binary("curl"), "--silent", "--show-error", "--max-time", "20", *args],
                          capture_output=True, text=True)


def test_client_certificates_required_and_verified(require_bpf, run_ig, prometheus_server, pki, workload, tmp_path):
    stranger = CertificateAuthority(tmp_path, "other CA")
    stranger.issue("stranger", "prometheus")
    config = web_config(tmp_path, f"tls_server_config:\n  cert_file: {pki.dir / 'server.crt'}\n"
                                  f"  key_file: {pki.dir / 'server.key'}\n"
                                  "  client_auth_type: RequireAndVerifyClientCert\n"
                                  f"  client_ca_file: {pki.cert}\n")
    promtool_check_web_config(config)
    ig = run_ig(exec_config(workload.comm), "--host", "--web-config-file", str(config),
                scheme="https", ssl_context=client_context(pki, "client"))
    workload.run(4)
    assert ig.wait_for("executed_total", 4) == 4

    url = ig.url
    ca = ["--cacert", str(pki.cert)]
    refused = curl(*ca, url)  # no client certificate
    assert refused.returncode != 0 and "executed_total" not in refused.stdout, refused
    foreign = curl(*ca, "--cert", str(stranger.dir / "stranger.crt"), "--key", str(stranger.dir / "stranger.key"), url)
    assert foreign.returncode != 0 and "executed_total" not in foreign.stdout, foreign
    good = curl(*ca, "--cert", str(pki.dir / "client.crt"), "--key", str(pki.dir / "client.key"), url)
    assert good.returncode == 0 and "executed_total 4" in good.stdout, good
    lint = subprocess.run([need_binary("promtool"), "check", "metrics"], input=good.stdout, capture_output=True, text=True)
    assert "error" not in (lint.stdout + lint.stderr).lower(), lint.stdout + lint.stderr

    prom = prometheus_server(write_config(tmp_path / "prometheus.yml", ig.address, scheme="https",
                                          tls_config={"ca_file": pki.cert, "cert_file": pki.dir / "client.crt",
                                                      "key_file": pki.dir / "client.key"}))
    result = prom.wait_for("executed_total", lambda r: r and r[0]["value"][1] == "4")
    assert result and result[0]["value"][1] == "4", result
    # promtool as a PromQL client of that Prometheus
    out = subprocess.run([need_binary("promtool"), "query", "instant", f"http://{prom.address}", "executed_total"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "=> 4" in out.stdout, out.stdout + out.stderr
    assert ig.value("ig_http_connections_closed_total", reason="tls_handshake") >= 2


def served_serial(ig, ca: CertificateAuthority) -> int:
    with socket.create_connection(("127.0.0.1", ig.port), timeout=10) as raw:
        with client_context(ca).wrap_socket(raw, server_hostname="localhost") as tls:
            return serial_of(ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True)).encode())


def test_rotated_certificate_is_served_without_restart(run_ig, synth, pki, tmp_path):
    config = web_config(tmp_path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    ig = run_ig(SYNTH, "--web-config-file", str(config),
                scheme="https", ssl_context=client_context(pki))
    first = serial_of((pki.dir / "server.crt").read_bytes())
    assert served_serial(ig, pki) == first
    # A new certificate written beside and moved in place, as cert-manager or a kubelet does
    staged = pki.server("staged")
    os.replace(staged.key, pki.dir / "server.key")
    os.replace(staged.cert, pki.dir / "server.crt")
    deadline = time.monotonic() + 30
    while served_serial(ig, pki) != staged.serial and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served_serial(ig, pki) == staged.serial != first
    assert ig.proc.poll() is None and "ig_info" in ig.text()
    assert ig.value("ig_web_config_reloads_total", result="success") >= 1
    # a broken change (a key that does not match) fails closed, never serving the previous files;
    # the next good change is served (tests/test_web_config_runtime.py has the rest)
    pki.issue("other", "x", key_path=pki.dir / "server.key", cert_path=tmp_path / "unused.crt")
    with pytest.raises(ssl.SSLError, match="INTERNAL_ERROR"):
        served_serial(ig, pki)
    fixed = pki.server("fixed")
    os.replace(fixed.key, pki.dir / "server.key")
    os.replace(fixed.cert, pki.dir / "server.crt")
    assert served_serial(ig, pki) == fixed.serial
    assert ig.value("ig_web_config_reloads_total", result="failure") >= 1


def test_plain_http_to_the_tls_port_is_told_so(run_ig, synth, pki, tmp_path):
    config = web_config(tmp_path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    ig = run_ig(SYNTH, "--web-config-file", str(config),
                scheme="https", ssl_context=client_context(pki))
    plain = curl("--write-out", "%{http_code}", f"http://{ig.address}/metrics")
    assert plain.returncode == 0, plain
    assert plain.stdout == "Client sent an HTTP request to an HTTPS server.\n400", plain


@pytest.mark.parametrize("text, message", [
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cert_flie: x\n",
     "unknown key tls_server_config.cert_flie"),
    ("basic_auth_user:\n  a: b\n", "unknown key basic_auth_user"),
    ("basic_auth_users:\n  prom: plaintext\n", "basic_auth_users.prom: the password must be a bcrypt hash"),
    ("tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n", "cannot read cert_file"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n",
     "client_auth_type RequireAndVerifyClientCert needs client_ca_file"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS14\n", "min_version 'TLS14'"),
    ("http_server_config:\n  headers:\n    X-Powered-By: ig\n", "HTTP header 'X-Powered-By' can not be configured"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
     "cipher_suites is not supported by ig"),
    ("tls_server_config: [\n", "not valid YAML"),
])
def test_bad_web_config_is_one_line_exit_2(pki, tmp_path, text, message):
    config = web_config(tmp_path, text)
    result = subprocess.run([IG, "prometheus", "--check", "--web-config-file", str(config)],
                            capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_check_accepts_a_good_web_config(pki, tmp_path):
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    config = web_config(tmp_path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                                  f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.cert.name}\n"
                                  "  min_version: TLS13\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
                                  f"basic_auth_users:\n  prom: {hashed}\n")
    promtool_check_web_config(config)
    result = subprocess.run([IG, "prometheus", "--check", "--web-config-file", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"{config}: OK, TLS on, 1 basic auth user(s)" in result.stdout


def test_the_documented_example_is_accepted_by_ig_and_promtool(pki, tmp_path):
    """docs/security.md's example file, with this test's certificates under its file names."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "security.md").read_text()
    example = re.search(r"```yaml\n(tls_server_config:.*?)```", doc, flags=re.S).group(1)
    config = web_config(pki.dir, example)
    (pki.dir / "clients-ca.crt").write_bytes(pki.cert.read_bytes())
    promtool_check_web_config(config)
    result = subprocess.run([IG, "prometheus", "--check", "--web-config-file", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    users = yaml.safe_load(example)["basic_auth_users"]
    assert bcrypt.checkpw(b"example", users["prometheus"].encode())


def test_client_allowed_sans(run_ig, synth, pki, tmp_path):
    pki.issue("someone", "someone", dns=("someone",))
    config = web_config(tmp_path, f"tls_server_config:\n  cert_file: {pki.dir / 'server.crt'}\n"
                                  f"  key_file: {pki.dir / 'server.key'}\n"
                                  "  client_auth_type: RequireAndVerifyClientCert\n"
                                  f"  client_ca_file: {pki.cert}\n  client_allowed_sans: [prometheus]\n")
    ig = run_ig(SYNTH, "--web-config-file", str(config), scheme="https", ssl_context=client_context(pki, "client"))
    assert "ig_info" in ig.text()  # the client certificate names DNS:prometheus
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(ig.url, timeout=10, context=client_context(pki, "someone"))
    assert ig.value("ig_http_connections_closed_total", reason="client_san") == 1
