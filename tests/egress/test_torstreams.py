"""Tests for studybuddy.torstreams: recorded STREAM/CIRC events joined into username/source -> exit."""

from __future__ import annotations

import threading
from typing import Any

from studybuddy.egress.torstreams import SOURCES_KEPT, Hop, StreamMap
from tests.torevents import EXIT_1, EXIT_2, OTHER, USER, circ, stream


def replay(streams: StreamMap, *events: Any) -> None:
    for item in events:
        (streams.on_circuit if item.type == "CIRC" else streams.on_stream)(item)


def test_stream_maps_username_to_its_circuit_exit() -> None:
    streams = StreamMap()
    replay(streams, circ("5", "LAUNCHED"), circ("5", "BUILT"), stream("12", "NEW", "0"))
    assert streams.circuits_of(USER) == []  # not attached yet
    replay(streams, stream("12", "SENTCONNECT", "5"), stream("12", "SUCCEEDED", "5"))
    assert streams.circuits_of(USER) == ["5"]
    assert streams.exit_hop("5") == Hop(EXIT_1, "exitone")
    assert streams.circuits_of(OTHER) == []


def test_two_circuits_for_one_username_most_recent_first() -> None:
    streams = StreamMap()
    replay(streams, circ("5", "BUILT"), circ("6", "BUILT", EXIT_2, "exittwo"))
    replay(streams, stream("12", "SUCCEEDED", "5"), stream("13", "SUCCEEDED", "6"))
    assert streams.circuits_of(USER) == ["6", "5"]
    replay(streams, stream("14", "SUCCEEDED", "5"))  # used again: most recent again
    assert streams.circuits_of(USER) == ["5", "6"]


def test_closed_stream_keeps_its_circuit_for_the_next_request() -> None:
    streams = StreamMap()
    replay(streams, circ("5", "BUILT"), stream("12", "SUCCEEDED", "5"), stream("12", "CLOSED", "5"))
    assert streams.circuits_of(USER) == ["5"]  # the next request goes out on the same circuit
    replay(streams, stream("12", "SUCCEEDED", "5", username=None))  # a closed stream's id is forgotten
    assert streams.users_of("5") == {USER}


def test_closed_circuit_forgets_exit_and_username() -> None:
    streams = StreamMap()
    replay(streams, circ("5", "BUILT"), circ("6", "BUILT", EXIT_2), stream("12", "SUCCEEDED", "5"))
    replay(streams, stream("13", "SUCCEEDED", "6", OTHER), circ("5", "CLOSED"), circ("6", "FAILED"))
    assert streams.exit_hop("5") is None
    assert streams.circuits_of(USER) == []
    assert streams.circuits_of(OTHER) == []
    assert streams.users_of("6") == set()


def test_detached_stream_keeps_its_username_when_reattached() -> None:
    streams = StreamMap()
    replay(streams, circ("5", "BUILT"), circ("6", "BUILT", EXIT_2))
    replay(streams, stream("12", "SENTCONNECT", "5"), stream("12", "DETACHED", "0", username=None))
    replay(streams, stream("12", "SUCCEEDED", "6", username=None))
    assert streams.circuits_of(USER) == ["6", "5"]


def test_stream_without_socks_username_is_ignored() -> None:
    streams = StreamMap()
    before = streams.attachments()
    replay(streams, circ("5", "BUILT"), stream("12", "SUCCEEDED", "5", username=None))
    assert streams.users_of("5") == set()
    assert streams.attachments() == before


def test_escaped_username_is_unquoted() -> None:
    streams = StreamMap()
    replay(streams, circ("5", "BUILT"), stream("12", "SUCCEEDED", "5", username=r"odd\"name"))
    assert streams.circuits_of('odd"name') == ["5"]


def test_the_exit_of_a_source_address_outlives_its_stream_and_circuit() -> None:
    """Blame goes to the circuit the answer came through, even once a renewal has closed it."""
    streams = StreamMap()
    replay(streams, circ("5", "BUILT"), circ("6", "BUILT", EXIT_2, "exittwo"))
    replay(streams, stream("12", "NEW", "0", source_port=41000), stream("12", "SENTCONNECT", "5"))
    replay(streams, stream("13", "NEW", "0", source_port=41001), stream("13", "SENTCONNECT", "6"))
    assert streams.exit_of_source("127.0.0.1", 41000) == Hop(EXIT_1, "exitone")
    assert streams.exit_of_source("127.0.0.1", 41001) == Hop(EXIT_2, "exittwo")
    replay(streams, stream("12", "CLOSED", "5"), circ("5", "CLOSED"))
    assert streams.exit_of_source("127.0.0.1", 41000) == Hop(EXIT_1, "exitone")
    assert streams.exit_of_source("127.0.0.1", 49999) is None


def test_a_reattached_stream_is_charged_to_its_new_circuit() -> None:
    streams = StreamMap()
    replay(streams, circ("5", "BUILT"), circ("6", "BUILT", EXIT_2, "exittwo"))
    replay(streams, stream("12", "NEW", "0", source_port=41000), stream("12", "SENTCONNECT", "5"))
    replay(streams, stream("12", "DETACHED", "0"), stream("12", "SENTCONNECT", "6"))
    assert streams.exit_of_source("127.0.0.1", 41000) == Hop(EXIT_2, "exittwo")


def test_a_source_seen_from_another_address_is_matched_by_port_when_unique() -> None:
    streams = StreamMap()
    replay(streams, circ("5", "BUILT"), stream("12", "NEW", "0", source_port=41000))
    replay(streams, stream("12", "SENTCONNECT", "5"))
    assert streams.exit_of_source("172.17.0.5", 41000) == Hop(EXIT_1, "exitone")  # NAT to a remote Tor


def test_remembered_sources_are_bounded() -> None:
    streams = StreamMap()
    replay(streams, circ("5", "BUILT"))
    for number in range(SOURCES_KEPT + 10):
        replay(streams, stream(str(number), "NEW", "0", source_port=1000 + number))
        replay(streams, stream(str(number), "SENTCONNECT", "5"), stream(str(number), "CLOSED", "5"))
    assert streams.exit_of_source("127.0.0.1", 1000) is None  # the oldest are forgotten
    assert streams.exit_of_source("127.0.0.1", 1000 + SOURCES_KEPT + 9) == Hop(EXIT_1, "exitone")


def test_wait_returns_once_an_event_makes_the_condition_true() -> None:
    streams = StreamMap()
    arrived = threading.Event()

    def feed() -> None:
        arrived.wait(5)
        replay(streams, circ("5", "BUILT"), stream("12", "SUCCEEDED", "5"))

    feeder = threading.Thread(target=feed)
    feeder.start()
    arrived.set()
    assert streams.wait(lambda: streams.circuits_of(USER) == ["5"], timeout=10)
    feeder.join()
    assert not streams.wait(lambda: False, timeout=0.01)
