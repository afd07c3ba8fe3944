"""Testee side of the Fleetwire conformance protocol, versions 1 and 2 (conformance/PROTOCOL.md).

    python3 -m fleetwire_py.testee

Reads length-prefixed JSON messages (u32 big-endian length, then UTF-8 JSON) from
standard input and writes answers the same way to standard output. Standard output
carries protocol messages only; logs go to standard error (``--verbose``).

Each request stands alone (PROTOCOL.md §5): the operations of :mod:`fleetwire_py.driver`
build fresh objects for every request.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import traceback
from typing import BinaryIO, Optional

from .driver import OPERATIONS, BadRequest, Unsupported

PROTOCOL_VERSION = 2
#: the versions spoken; the runner offers its own in `protocols` (PROTOCOL.md §3)
PROTOCOLS = (1, 2)
MAX_MESSAGE = 64 * 1024 * 1024  # PROTOCOL.md §2
NAME = "fleetwire-py"
VERSION = "0.2.0"
#: §15 levels claimed: codec and endpoint; not proxy (no forwarding, §7.3) and not
#: secure (the conformance protocol has no TLS cases; peer.py does TLS separately)
LEVELS = ["codec", "endpoint"]


class ProtocolError(Exception):
    """The byte stream from the runner is not a valid message sequence."""


def read_message(stream: BinaryIO) -> Optional[dict]:
    """One message, or None at a clean end of input (between messages)."""
    head = stream.read(4)
    if not head:
        return None
    if len(head) < 4:
        raise ProtocolError("input ended inside a length prefix")
    (n,) = struct.unpack(">I", head)
    if n > MAX_MESSAGE:
        raise ProtocolError(f"message of {n} bytes exceeds 64 MiB")
    body = stream.read(n)
    if len(body) < n:
        raise ProtocolError("input ended inside a message")
    try:
        msg = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError(f"message is not UTF-8 JSON: {e}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("message is not a JSON object")
    return msg


def write_message(stream: BinaryIO, msg: dict) -> None:
    body = json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def negotiate(msg: dict) -> Optional[int]:
    """The highest version both speak: from `protocols` when the runner sends it, else
    from `protocol` (a version 1 runner)."""
    offered = msg.get("protocols")
    if not isinstance(offered, list):
        offered = [msg.get("protocol")]
    common = [v for v in offered if v in PROTOCOLS]
    return max(common) if common else None


def hello_answer(protocol: int = PROTOCOL_VERSION) -> dict:
    return {"type": "hello", "protocol": protocol, "name": NAME, "version": VERSION,
            "levels": list(LEVELS), "operations": sorted(OPERATIONS)}


def answer(req: dict, log) -> dict:
    rid = req.get("id")
    op = req.get("op")
    fn = OPERATIONS.get(op) if isinstance(op, str) else None
    if fn is None:
        return {"type": "unsupported", "id": rid}
    try:
        return {"type": "result", "id": rid, "result": fn(req)}
    except Unsupported as e:
        log(f"{req.get('case')}: unsupported: {e}")
        return {"type": "unsupported", "id": rid}
    except (BadRequest, KeyError, ValueError, TypeError) as e:
        log(f"{req.get('case')}: bad request: {e!r}")
        return {"type": "error", "id": rid, "message": f"cannot run request: {e!r}"}
    except Exception as e:  # an adapter or implementation bug: the case fails, we go on
        log(traceback.format_exc())
        return {"type": "error", "id": rid, "message": f"internal error: {e!r}"}


def serve(inp: BinaryIO, out: BinaryIO, verbose: bool = False) -> int:
    def log(text: str) -> None:
        if verbose:
            print(f"[{NAME}] {text}", file=sys.stderr, flush=True)

    greeted = False
    while True:
        try:
            msg = read_message(inp)
        except ProtocolError as e:
            print(f"[{NAME}] protocol error: {e}", file=sys.stderr, flush=True)
            return 2
        if msg is None:
            return 0
        kind = msg.get("type")
        if kind == "hello":
            version = negotiate(msg)
            if version is None:
                write_message(out, {"type": "error",
                                    "message": f"protocol {msg.get('protocol')!r} not supported (speaks 1, 2)"})
                return 2
            write_message(out, hello_answer(version))
            greeted = True
        elif kind == "bye":
            return 0
        elif kind == "request":
            if not greeted:
                log("request before hello; answering anyway")
            log(f"request {msg.get('id')} {msg.get('op')} {msg.get('case')}")
            write_message(out, answer(msg, log))
        else:
            log(f"ignoring message of type {kind!r}")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m fleetwire_py.testee", description=__doc__.splitlines()[0])
    ap.add_argument("--verbose", "-v", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)
    # Standard output carries protocol messages only: anything printed by mistake goes
    # to stderr instead of corrupting the framing.
    out = sys.stdout.buffer
    sys.stdout = sys.stderr
    try:
        return serve(sys.stdin.buffer, out, args.verbose)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
