"""A tiny authoritative DNS server for the test bed: UDP, A records only.

Each exit relay of the private Tor network resolves names through its own ``DnsServer``, so the
same name (``www.youtube.com``) leads every exit to a different loopback address and a server can
tell exits apart by the local address a connection arrived on.

Answers: the A record for a known name (any letter case; the question is echoed verbatim, as
tor randomises the case of queries), an empty NOERROR answer for other types of a known name
(AAAA included), NXDOMAIN for unknown names, FORMERR for what does not parse.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

logger = logging.getLogger(__name__)

HEADER = struct.Struct("!HHHHHH")
QTYPE_A = 1
QCLASS_IN = 1
RCODE_FORMERR = 1
RCODE_NXDOMAIN = 3
ANSWER_TTL_SECONDS = 60
FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_RD = 0x0100
FLAG_RA = 0x0080
OPCODE_MASK = 0x7800
POINTER_TO_QUESTION_NAME = 0xC00C  # the question name always starts right after the header
MAX_DATAGRAM = 4096


class MalformedQueryError(ValueError):
    """The datagram is not a DNS query this server understands."""


@dataclass(frozen=True)
class Question:
    """The single question of a query, with its raw bytes (echoed in the answer)."""

    name: str
    qtype: int
    qclass: int
    raw: bytes


def parse_question(packet: bytes) -> Question:
    """Read the one question that follows the header; names in queries are never compressed."""
    offset = HEADER.size
    labels: list[str] = []
    while True:
        if offset >= len(packet):
            raise MalformedQueryError("question name runs past the end of the packet")
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length > 63:
            raise MalformedQueryError("compressed or oversized label in a question")
        labels.append(packet[offset : offset + length].decode("ascii", errors="replace"))
        offset += length
    if offset + 4 > len(packet):
        raise MalformedQueryError("question has no type and class")
    qtype, qclass = struct.unpack_from("!HH", packet, offset)
    return Question(".".join(labels), qtype, qclass, packet[HEADER.size : offset + 4])


def build_response(query: bytes, records: Mapping[str, str]) -> bytes | None:
    """The answer to ``query`` from ``records`` (lower-case name -> IPv4), or None to stay silent."""
    if len(query) < HEADER.size:
        return None
    query_id, query_flags, question_count, _, _, _ = HEADER.unpack_from(query)
    if query_flags & FLAG_QR:
        return None  # a response, not a query
    flags = FLAG_QR | FLAG_AA | FLAG_RA | (query_flags & (OPCODE_MASK | FLAG_RD))
    try:
        if question_count != 1:
            raise MalformedQueryError(f"{question_count} questions")
        question = parse_question(query)
    except MalformedQueryError:
        return HEADER.pack(query_id, flags | RCODE_FORMERR, 0, 0, 0, 0)
    address = records.get(question.name.lower().rstrip("."))
    if address is None:
        return HEADER.pack(query_id, flags | RCODE_NXDOMAIN, 1, 0, 0, 0) + question.raw
    if question.qtype != QTYPE_A or question.qclass != QCLASS_IN:
        return HEADER.pack(query_id, flags, 1, 0, 0, 0) + question.raw
    answer = struct.pack("!HHHIH", POINTER_TO_QUESTION_NAME, QTYPE_A, QCLASS_IN, ANSWER_TTL_SECONDS, 4)
    return HEADER.pack(query_id, flags, 1, 1, 0, 0) + question.raw + answer + socket.inet_aton(address)


class DnsServer:
    """A UDP DNS server on a loopback address, answering from a fixed name -> IPv4 map.

    ``port=0`` picks a free port; read the chosen one from ``address`` after ``start()``.
    """

    def __init__(self, records: Mapping[str, str], host: str = "127.0.0.1", port: int = 0) -> None:
        for address in records.values():
            socket.inet_aton(address)  # raises OSError early for a malformed address
        self.records = {name.lower().rstrip("."): address for name, address in records.items()}
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((host, port))
        self._socket.settimeout(0.2)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"dns-{host}", daemon=True)
        self.queries: list[Question] = []

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        host, port = self._socket.getsockname()
        return str(host), int(port)

    def start(self) -> DnsServer:
        """Serve in a background thread until ``stop()``."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                query, client = self._socket.recvfrom(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return  # socket closed under us
            response = build_response(query, self.records)
            if response is None:
                continue
            try:
                self.queries.append(parse_question(query))
            except MalformedQueryError:
                logger.debug("malformed DNS query from %s", client)
            self._socket.sendto(response, client)
