"""`--web-config-file`: TLS and basic auth in the Prometheus exporter-toolkit's format.

The same file works for ig and for node_exporter: `tls_server_config` (cert_file, key_file,
client_auth_type, client_ca_file, client_allowed_sans, min_version, max_version),
`http_server_config` (http2, headers) and `basic_auth_users` (bcrypt hashes). Relative paths are
read from the file's directory, as the toolkit does. Keys the toolkit knows but ig cannot honour
with Python's ssl module are refused by name rather than silently ignored.

Every file is read the same way (`read_regular`): named without being opened, refused unless it is
a regular file (a FIFO would block the reader, a device's open can have effects), at most
MAX_FILE_BYTES, and its stat recorded so that a later change is seen (docs/security.md).
"""

from __future__ import annotations

import os
import ssl
import stat
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
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

    def context(self, stamps: list | None = None) -> ssl.SSLContext:
        """A server context from the files as they are now; ConfigError if they cannot be used.
        OpenSSL reads copies of the bytes read here, never the paths themselves."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = TLS_VERSIONS[self.min_version]
        ctx.maximum_version = TLS_VERSIONS[self.max_version]
        cert = read_regular(self.cert_file, "cert_file", stamps)
        key = read_regular(self.key_file, "key_file", stamps)
        try:
            with _in_memory(cert) as cert_path, _in_memory(key) as key_path:
                ctx.load_cert_chain(cert_path, key_path)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load cert_file {self.cert_file} with key_file {self.key_file}: {_reason(exc)}") from None
        if self.client_ca_file is not None:
            ca = read_regular(self.client_ca_file, "client_ca_file", stamps)
            try:
                with _in_memory(ca) as ca_path:
                    ctx.load_verify_locations(cafile=ca_path)
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
    context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)  # built from `tls`
    stamps: tuple = ()  # (path, file_stamp) of every file read, when it was read


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
    if not isinstance(auth, str):
        raise ConfigError(f"{path}: {where}client_auth_type must be a string")
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
        if not isinstance(value, str) or value not in TLS_VERSIONS:
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
            raise ConfigError(f"{path}: HTTP header {str(name)[:60]!r} can not be configured (allowed: "
                              f"{', '.join(EXTRA_HEADERS)})")
        allowed = EXTRA_HEADERS[name]
        if not isinstance(value, str) or (allowed and value not in allowed):
            raise ConfigError(
                f"{path}: invalid value for {name}: expected one of {', '.join(allowed or ('a string',))}")
    return dict(headers)


def _users(section: dict, path: Path) -> dict[str, bytes]:
    users = {}
    for name, hashed in section.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")) or len(hashed) != 60:
            raise ConfigError(f"{path}: basic_auth_users.{str(name)[:60]}: the password must be a bcrypt hash "
                              "(see docs/security.md for how to make one)")
        users[str(name)] = hashed.encode()
    return users


def file_stamp(st: os.stat_result) -> tuple:
    """What changes when a file is replaced or written to."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def stamp_of(path: Path) -> tuple | None:
    try:
        return file_stamp(os.stat(path))
    except (OSError, ValueError):
        return None


def read_regular(path: Path, what: str, stamps: list | None = None) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES. The file is named with O_PATH, which
    opens neither a FIFO nor a device, and is opened for reading only once it is known to be a
    regular file; `stamps` gets (path, stamp) of what was read, or (path, None)."""
    stamp = None
    try:
        named = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            st = os.fstat(named)
            stamp = file_stamp(st)
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(f"{what} {path} is not a regular file")
            if st.st_size > MAX_FILE_BYTES:
                raise ConfigError(f"{what} {path} is larger than {MAX_FILE_BYTES} bytes")
            fd = os.open(f"/proc/self/fd/{named}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        finally:
            os.close(named)
        with os.fdopen(fd, "rb") as fh:
            stamp = file_stamp(os.fstat(fd))
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except ValueError:  # a NUL in the name
        raise ConfigError(f"cannot read {what} {str(path)[:200]!r}: the name has a NUL byte") from None
    finally:
        if stamps is not None:
            stamps.append((path, stamp))
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{what} {path} is larger than {MAX_FILE_BYTES} bytes")
    return data


@contextmanager
def _in_memory(data: bytes):
    """A path OpenSSL can open that holds `data` and nothing else can change."""
    fd = os.memfd_create("ig-web-config", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def load_web_config(path: str | Path, stamps: list | None = None) -> WebConfig:
    """Parse and check the file, and build its TLS context so that bad certificates fail here.
    `stamps` (a list) gets each file read, also when the load fails."""
    path = Path(path)
    stamps = [] if stamps is None else stamps
    try:
        text = read_regular(path, "--web-config-file", stamps).decode()
    except UnicodeDecodeError:
        raise ConfigError(f"--web-config-file {path} is not UTF-8 text") from None
    try:
        doc = yaml.safe_load(text)
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
    context = config.tls.context(stamps) if config.tls is not None else None
    return replace(config, context=context, stamps=tuple(stamps))
