"""Helpers for tests and local runs: a throw-away PKI written to PEM files."""

from __future__ import annotations

import os
from typing import Dict, Sequence

from ._native import test_pki

__all__ = ["write_test_pki"]


def write_test_pki(directory: str, names: Sequence[str] = ("localhost",)) -> Dict[str, str]:
    """Writes a test CA, a server certificate for ``names`` and a client certificate
    (for mutual TLS) into ``directory``; returns their paths: ``ca_cert``, ``cert``,
    ``key``, ``client_cert``, ``client_key``. Never for production."""
    pems = test_pki(list(names))
    paths = {}
    for name, text in pems.items():
        path = os.path.join(directory, name + ".pem")
        with open(path, "w") as f:
            f.write(text)
        paths[name] = path
    return paths
