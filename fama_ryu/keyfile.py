"""Private key files: written readable by their owner only."""

from __future__ import annotations

import os
from pathlib import Path

from fama_ryu import cga


def write_private_key(path: Path, key: cga.rsa.RSAPrivateKey) -> None:
    """Write ``key`` as PKCS#8 PEM with mode 0600, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(cga.private_key_pem(key))
    os.chmod(path, 0o600)  # the file may have existed with a wider mode
