"""`kubectl gadget deploy --web-config-file FILE`: the file and the files it names, as one Secret.

The file is checked first by ig's own loader (the same one-line errors as `ig prometheus --check
--web-config-file`), so a bad file contacts nothing. A Secret volume is one flat directory: the
certificate, key and client CA are stored under fixed keys and the copy of the file names them so,
relative to its own directory, wherever they were on this machine.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from ..webconfig import load_web_config, read_regular
from .manifests import WEB_CONFIG_KEY

# tls_server_config key -> the Secret key (and file name in the agent) holding that file
FILE_KEYS = {"cert_file": "tls.crt", "key_file": "tls.key", "client_ca_file": "client-ca.crt"}


def web_config_data(path: Path) -> tuple[dict[str, str], bool]:
    """(the Secret's data, whether the file turns TLS on). The agent checks its copy again when it
    loads it, so a file changed between the check and the read here still cannot open the port."""
    checked = load_web_config(path)
    doc = yaml.safe_load(read_regular(path, "web config file")) or {}
    files = {}
    tls = doc.get("tls_server_config") or {}
    if checked.tls is not None:
        for key, name in FILE_KEYS.items():
            if key in tls:
                files[name] = read_regular(getattr(checked.tls, key), key)
                tls[key] = name
    copy = yaml.safe_dump(doc, sort_keys=False).encode()
    data = {WEB_CONFIG_KEY: copy, **files}
    return {key: base64.b64encode(value).decode() for key, value in data.items()}, checked.tls is not None
