"""`--web-config-file`: TLS and basic auth in the Prometheus exporter-toolkit's format.

The same file works for ig and for node_exporter: `tls_server_config` (cert_file, key_file,
client_auth_type, client_ca_file, client_allowed_sans, min_version, max_version),
`http_server_config` (http2, headers) and `basic_auth_users` (bcrypt hashes). Relative paths are
read from the file's directory, as the toolkit does. Keys the toolkit knows but ig cannot honour
with Python's ssl module are refused by name rather than silently ignored.
"""

from __future__ import annotations

import os
import ssl
import stat
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ConfigError

MAX_FILE_BYTES = 1 << 20

TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# The toolkit's names (Go's tls.ClientAuthType) -> what Python's ssl can do. The two that ask
# for a certificate without verifying it have no equivalent; the toolkit calls them insecure.
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
# The toolkit restricts extra response headers to these (and some to fixed values).
EXTRA_HEADERS = {"Strict-Transport-Security": None, "X-Content-Type-Options": ("nosniff",),
                 "X-Frame-Options": ("deny", "sameorigin"), "X-XSS-Protection": None,
                 "Content-Security-Policy": None}

TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "client_allowed_sans",
            "min_version", "max_version", "prefer_server_cipher_suites"}
NOT_SUPPORTED = {"cert": "inline certificates (use cert_file)", "key": "inline keys (use key_file)",
                 "client_ca": "an inline client CA (use client_ca_file)",
                 "cipher_suites": "choosing cipher suites", "curve_preferences": "choosing curves",
                 "rate_limit": "rate limiting"}


@dataclass(frozen=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    client_auth: str = "NoClientCert"
    client_ca_file: Path | None = None
    allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"

    def files(self) -> tuple[Path, ...]:
        return (self.cert_file, self.key_file) + ((self.client_ca_file,) if self.client_ca_file else ())

    def context(self) -> ssl.SSLContext:
        """A server context from the files as they are now; ConfigError if they cannot be used."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = TLS_VERSIONS[self.min_version]
        ctx.maximum_version = TLS_VERSIONS[self.max_version]
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load cert_file {self.cert_file} with key_file {self.key_file}: {_reason(exc)}") from None
        if self.client_ca_file is not None:
            try:
                ctx.load_verify_locations(cafile=self.client_ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load client_ca_file {self.client_ca_file}: {_reason(exc)}") from None
        ctx.verify_mode = CLIENT_AUTH[self.client_auth]
        return ctx


@dataclass(frozen=True)
class WebConfig:
    path: Path
    tls: TLSSettings | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def files(self) -> tuple[Path, ...]:
        return (self.path,) + (self.tls.files() if self.tls else ())


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)


def _mapping(value, where: str, path: Path) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {where} must be a mapping")
    return value


def _string(value, where: str, path: Path) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: {where} must be a non-empty string")
    return value


def _check_keys(section: dict, known: set[str], where: str, path: Path) -> None:
    for key in section:
        if key in NOT_SUPPORTED:
            raise ConfigError(f"{path}: {where}{key} is not supported by ig ({NOT_SUPPORTED[key]})")
        if key not in known:
            raise ConfigError(f"{path}: unknown key {where}{key} (known: {', '.join(sorted(known))})")


def _tls(section: dict, path: Path) -> TLSSettings | None:
    _check_keys(section, TLS_KEYS, "tls_server_config.", path)
    if not section:
        return None
    where = "tls_server_config."
    for key in ("cert_file", "key_file"):
        if key not in section:
            raise ConfigError(f"{path}: {where}{key} is missing")

    def rel(key: str) -> Path:
        return path.parent / _string(section[key], where + key, path)

    auth = section.get("client_auth_type", "NoClientCert")
    if auth in UNVERIFIED_CLIENT_AUTH:
        raise ConfigError(f"{path}: {where}client_auth_type {auth} accepts certificates without verifying them and "
                          "is not supported by ig; use RequireAndVerifyClientCert")
    if auth not in CLIENT_AUTH:
        raise ConfigError(f"{path}: {where}client_auth_type {str(auth)[:60]!r} is not one of {', '.join(CLIENT_AUTH)}")
    ca = rel("client_ca_file") if "client_ca_file" in section else None
    if ca is not None and auth == "NoClientCert":
        raise ConfigError(f"{path}: {where}client_ca_file is set but client_auth_type is NoClientCert")
    if auth != "NoClientCert" and ca is None:
        raise ConfigError(f"{path}: {where}client_auth_type {auth} needs client_ca_file")
    sans = section.get("client_allowed_sans") or []
    if not isinstance(sans, list) or not all(isinstance(s, str) for s in sans):
        raise ConfigError(f"{path}: {where}client_allowed_sans must be a list of strings")
    if sans and auth != "RequireAndVerifyClientCert":
        raise ConfigError(f"{path}: {where}client_allowed_sans needs client_auth_type RequireAndVerifyClientCert")
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        value = section.get(key, default)
        if value not in TLS_VERSIONS:
            raise ConfigError(f"{path}: {where}{key} {str(value)[:20]!r} is not one of {', '.join(TLS_VERSIONS)}")
        versions[key] = value
    if not isinstance(section.get("prefer_server_cipher_suites", True), bool):
        raise ConfigError(f"{path}: {where}prefer_server_cipher_suites must be true or false")
    return TLSSettings(rel("cert_file"), rel("key_file"), auth, ca, tuple(sans), **versions)


def _headers(section: dict, path: Path) -> dict[str, str]:
    _check_keys(section, {"http2", "headers"}, "http_server_config.", path)
    if not isinstance(section.get("http2", True), bool):
        raise ConfigError(f"{path}: http_server_config.http2 must be true or false")
    headers = _mapping(section.get("headers"), "http_server_config.headers", path)
    for name, value in headers.items():
        if name not in EXTRA_HEADERS:
            raise ConfigError(f"{path}: HTTP header {str(name)[:60]!r} can not be configured (allowed: {', '.join(EXTRA_HEADERS)})")
        allowed = EXTRA_HEADERS[name]
        if not isinstance(value, str) or (allowed and value not in allowed):
            raise ConfigError(f"{path}: invalid value for {name}: expected one of {', '.join(allowed or ('a string',))}")
    return dict(headers)


def _users(section: dict, path: Path) -> dict[str, bytes]:
    users = {}
    for name, hashed in section.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")) or len(hashed) != 60:
            raise ConfigError(f"{path}: basic_auth_users.{str(name)[:60]}: the password must be a bcrypt hash "
                              "(see docs/security.md for how to make one)")
        users[str(name)] = hashed.encode()
    return users


def read_text(path: Path) -> str:
    """The file's text: a regular file of at most MAX_FILE_BYTES (a FIFO would block the reader)."""
    try:
        with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NONBLOCK)) as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise ConfigError(f"--web-config-file {path} is not a regular file")
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read --web-config-file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"--web-config-file {path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"--web-config-file {path} is not UTF-8 text") from None


def load_web_config(path: str | Path) -> WebConfig:
    """Parse and check the file, and build its TLS context once so that bad certificates fail here."""
    path = Path(path)
    try:
        doc = yaml.safe_load(read_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"--web-config-file {path} is not valid YAML{at}") from None
    except RecursionError:
        raise ConfigError(f"--web-config-file {path} is nested too deeply") from None
    doc = _mapping(doc, "the file", path)
    _check_keys(doc, {"tls_server_config", "http_server_config", "basic_auth_users"}, "", path)
    config = WebConfig(
        path=path,
        tls=_tls(_mapping(doc.get("tls_server_config"), "tls_server_config", path), path),
        users=_users(_mapping(doc.get("basic_auth_users"), "basic_auth_users", path), path),
        headers=_headers(_mapping(doc.get("http_server_config"), "http_server_config", path), path),
    )
    if config.tls is not None:
        config.tls.context()
    return config
