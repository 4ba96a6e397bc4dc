"""The test bed's DNS server answers A queries from its map, and nothing else."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.bed.dns import DnsServer, build_response

RECORDS = {"www.youtube.com": "127.0.0.11"}
QTYPE_A = 1
QTYPE_AAAA = 28
NOERROR, FORMERR, NXDOMAIN = 0, 1, 3


def make_query(name: str, qtype: int = QTYPE_A, query_id: int = 0x1234, edns: bool = False) -> bytes:
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    question += struct.pack("!HH", qtype, 1)
    additional = b"\0" + struct.pack("!HHIH", 41, 4096, 0, 0) if edns else b""
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 1 if edns else 0)
    return header + question + additional


def parse_reply(reply: bytes) -> tuple[int, int, int, list[str]]:
    """(id, rcode, question count, answer addresses) of a reply whose answers follow one question."""
    query_id, flags, questions, answers, _, _ = struct.unpack_from("!HHHHHH", reply)
    assert flags & 0x8000, "QR bit set"
    offset = 12
    for _ in range(questions):
        while reply[offset]:
            offset += reply[offset] + 1
        offset += 5
    addresses = []
    for _ in range(answers):
        name_pointer, rtype, rclass, _, length = struct.unpack_from("!HHHIH", reply, offset)
        assert (name_pointer, rtype, rclass, length) == (0xC00C, QTYPE_A, 1, 4)
        addresses.append(socket.inet_ntoa(reply[offset + 12 : offset + 16]))
        offset += 16
    return query_id, flags & 0xF, questions, addresses


@pytest.fixture
def server() -> Iterator[DnsServer]:
    with DnsServer(RECORDS) as dns_server:
        yield dns_server


def ask(server: DnsServer, query: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(2)
        client.sendto(query, server.address)
        return client.recv(4096)


def test_a_query_over_udp_gets_the_mapped_address(server: DnsServer) -> None:
    reply = ask(server, make_query("www.youtube.com", query_id=0xBEEF))
    assert parse_reply(reply) == (0xBEEF, NOERROR, 1, ["127.0.0.11"])
    assert [question.name for question in server.queries] == ["www.youtube.com"]


def test_letter_case_is_ignored_and_echoed_verbatim() -> None:
    query = make_query("wWw.YouTube.COM")
    reply = build_response(query, RECORDS)
    assert reply is not None
    assert parse_reply(reply)[1:] == (NOERROR, 1, ["127.0.0.11"])
    assert reply[12 : len(query)] == query[12:]


def test_aaaa_of_a_known_name_is_an_empty_answer() -> None:
    reply = build_response(make_query("www.youtube.com", QTYPE_AAAA), RECORDS)
    assert reply is not None
    assert parse_reply(reply)[1:] == (NOERROR, 1, [])


def test_unknown_name_is_nxdomain() -> None:
    reply = build_response(make_query("example.com"), RECORDS)
    assert reply is not None
    assert parse_reply(reply)[1:] == (NXDOMAIN, 1, [])


def test_edns_additional_record_is_ignored() -> None:
    reply = build_response(make_query("www.youtube.com", edns=True), RECORDS)
    assert reply is not None
    assert parse_reply(reply)[1:] == (NOERROR, 1, ["127.0.0.11"])


def test_truncated_question_is_formerr_and_a_response_gets_no_reply() -> None:
    reply = build_response(make_query("www.youtube.com")[:-3], RECORDS)
    assert reply is not None
    assert parse_reply(reply)[1:] == (FORMERR, 0, [])
    response_packet = build_response(make_query("www.youtube.com"), RECORDS)
    assert response_packet is not None
    assert build_response(response_packet, RECORDS) is None
    assert build_response(b"\x12", RECORDS) is None


def test_invalid_address_in_the_map_is_refused_up_front() -> None:
    with pytest.raises(OSError):
        DnsServer({"www.youtube.com": "not-an-address"})


@given(st.binary(max_size=600))
def test_any_datagram_gets_a_reply_or_silence_never_an_exception(packet: bytes) -> None:
    reply = build_response(packet, RECORDS)
    if reply is not None:
        assert reply[:2] == packet[:2]
