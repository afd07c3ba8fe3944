"""Type stubs for the native module (Rust, PyO3)."""

from typing import Dict, Iterable, List, Optional, Tuple, Union

__version__: str

SNAPPY: int
ZLIB: int
SECRET: int
PREFACE: bytes

Route = Tuple[int, int, int]
BytesLike = Union[bytes, bytearray, memoryview, "Payload"]

class FleetwireError(Exception):
    code: Optional[int]
    code_name: Optional[str]
    offset: Optional[int]

class ProtocolError(FleetwireError):
    packets: List["Packet"]

class SendRefused(FleetwireError): ...
class QueueFull(SendRefused): ...
class ConnectionClosed(SendRefused): ...
class UnknownConnection(SendRefused): ...
class PayloadTooLarge(SendRefused): ...
class TlsConfigError(FleetwireError): ...
class EngineClosed(FleetwireError): ...

class Payload:
    """Received bytes, read-only, zero-copy: memoryview(p), bytes(p), len(p)."""

    def __len__(self) -> int: ...
    def __buffer__(self, flags: int) -> memoryview: ...

class ServerTls:
    def __init__(self, cert: str, key: str, client_ca: Optional[str] = None) -> None: ...

class ClientTls:
    def __init__(
        self, ca: str, server_name: str = "localhost", cert: Optional[str] = None, key: Optional[str] = None
    ) -> None: ...

class Listener:
    id: int
    host: str
    port: int

class Message:
    conn: int
    source: int
    route: Route
    node: int
    service: int
    channel: int
    payload: Payload
    never_compress: bool
    def __len__(self) -> int: ...

class Accepted:
    conn: int
    listener: int
    peer_host: str
    peer_port: int

class Connected:
    conn: int
    role: str
    node_id: int
    attributed_id: int
    codecs: int
    max_payload: int

class PacketError:
    conn: int
    code: int
    code_name: Optional[str]
    source: int
    reason: str

class SendFailed:
    conn: int
    route: Route
    error: str

class Pong:
    conn: int
    rtt: float

class GoawayReceived:
    conn: int
    delivered: int
    reason: str

class Undelivered:
    conn: int
    queued: int
    unconfirmed: int

class Closed:
    conn: int
    code: int
    code_name: Optional[str]
    by_peer: bool
    reason: str
    delivered: Optional[int]

Event = Union[
    Message, Accepted, Connected, PacketError, SendFailed, Pong, GoawayReceived, Undelivered, Closed
]

class Counter:
    packets: int
    bytes: int
    failed: int

class Engine:
    closed: bool
    def __init__(
        self,
        io_threads: int = 1,
        *,
        node_id: int = 1,
        send_queue_packets: Optional[int] = None,
        send_queue_bytes: Optional[int] = None,
        recv_budget_bytes: Optional[int] = None,
        global_recv_budget_bytes: Optional[int] = None,
        ping_interval: Optional[float] = 1.0,
        close_timeout: Optional[float] = None,
        io_slice_us: Optional[int] = 100,
    ) -> None: ...
    def listen(self, host: str, port: int, *, tls: Optional[ServerTls] = None) -> Listener: ...
    def connect(self, host: str, port: int, *, tls: Optional[ClientTls] = None) -> int: ...
    def send(self, conn: int, route: Route, payload: BytesLike, flags: int = 0) -> None: ...
    def send_many(
        self, conn: int, messages: Iterable[Union[Tuple[Route, BytesLike], Tuple[Route, BytesLike, int]]]
    ) -> int: ...
    def recv_batch(self, timeout: Optional[float] = None) -> List[Event]: ...
    def ping(self, conn: int) -> bool: ...
    def stats(self, conn: int) -> Optional[Dict[str, object]]: ...
    def recv_queue_bytes(self) -> Tuple[int, int]: ...
    def connections(self) -> int: ...
    def close_conn(self, conn: int) -> bool: ...
    def wake_fd(self) -> int: ...
    def clear_wake_fd(self) -> None: ...
    def route_echo(self, service: int) -> Counter: ...
    def route_drop(self, service: int) -> Counter: ...
    def route_count(self, service: int) -> Counter: ...
    def route_forward(self, service: int, to: int) -> Counter: ...
    def route_c(self, service: int, handler: int, user: int = 0) -> Counter: ...
    def unroute(self, service: int) -> None: ...
    def close(self, timeout: float = 5.0) -> bool: ...
    def __enter__(self) -> "Engine": ...
    def __exit__(self, *exc: object) -> bool: ...

class Header:
    kind: str
    never_compress: bool
    codec: str
    hints: int
    length: int
    node: int
    service: int
    channel: int
    route: Route
    source: Optional[int]
    header_len: int
    def __init__(
        self,
        kind: str = "DATA",
        *,
        node: int = 0,
        service: int = 0,
        channel: int = 0,
        length: int = 0,
        codec: str = "none",
        never_compress: bool = False,
        hints: int = 0,
        source: Optional[int] = None,
    ) -> None: ...
    def encode(self) -> bytes: ...

class Incomplete:
    needed: int
    def __init__(self, needed: int) -> None: ...

class Packet:
    header: Header
    payload: Payload
    def control(self) -> Optional[Dict[str, object]]: ...
    def encode(self) -> bytes: ...

class Deframer:
    offset: int
    buffered: int
    complete: bool
    def __init__(self, max_payload: int = 65535, *, preface: bool = False, check_control: bool = True) -> None: ...
    def feed(self, data: bytes) -> List[Packet]: ...

def parse_header(data: bytes, max_payload: int = 65535) -> Union[Header, Incomplete]: ...
def parse_packet(data: bytes, max_payload: int = 65535) -> Union[Tuple[Packet, int], Incomplete]: ...
def encode_packet(header: Header, payload: bytes) -> bytes: ...
def encode_data(
    route: Route, payload: bytes, *, never_compress: bool = False, source: Optional[int] = None
) -> bytes: ...
def decode_control(kind: str, payload: bytes) -> Dict[str, object]: ...
def encode_control(kind: str, fields: Dict[str, object]) -> bytes: ...
def decompress(
    codec: str, data: bytes, *, max_decompressed: int = 262144, max_ratio: int = 100, codecs: int = 3
) -> bytes: ...
def inspect(
    data: bytes, *, json: bool = False, hex: bool = False, max_payload: int = 65535
) -> Tuple[str, Dict[str, object]]: ...
def error_codes() -> Dict[str, int]: ...
def test_pki(names: List[str] = ...) -> Dict[str, str]: ...
