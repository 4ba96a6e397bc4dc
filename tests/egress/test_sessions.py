import pytest

from studybuddy.egress.sessions import LISTER, Identity, ProxyEndpoint, new_session
from studybuddy.errors import InputError
from studybuddy.proxyspec import parse_proxy


def test_proxy_endpoint_parsing() -> None:
    assert ProxyEndpoint.parse("socks5h://127.0.0.1:9050") == ProxyEndpoint("127.0.0.1", 9050)
    assert ProxyEndpoint.parse("tor-proxy:9050") == ProxyEndpoint("tor-proxy", 9050)
    for bad in ("http://127.0.0.1:8080", "socks5h://u:p@127.0.0.1:9050", "socks5h://127.0.0.1", "::::"):
        with pytest.raises(InputError, match="--tor-socks"):
            ProxyEndpoint.parse(bad)


def test_identity_generations_are_unique_and_hide_the_password() -> None:
    first = Identity.first("run1", 2)
    second = first.next()
    assert first.username == "sb-run1-w2-g0"
    assert second.username == "sb-run1-w2-g1"
    assert first.password != second.password
    assert first.password not in repr(first)
    url = first.proxy_url(ProxyEndpoint("127.0.0.1", 9050))
    assert url == f"socks5h://sb-run1-w2-g0:{first.password}@127.0.0.1:9050"


def test_the_lister_has_a_username_no_pool_worker_can_have() -> None:
    lister = Identity.first("run1", LISTER)
    assert (lister.username, lister.next().username) == ("sb-run1-list-g0", "sb-run1-list-g1")


def test_session_ignores_environment_and_uses_its_own_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://10.9.9.9:3128")
    identity = Identity.first("r", 0)
    session = new_session(identity=identity, proxy=ProxyEndpoint("127.0.0.1", 9050), ca_bundle="/tmp/ca.pem")
    assert session.trust_env is False
    assert session.verify == "/tmp/ca.pem"
    assert session.proxies["https"] == identity.proxy_url(ProxyEndpoint("127.0.0.1", 9050))
    direct = new_session()
    assert direct.proxies == {} and direct.verify is True
    egress = parse_proxy("https://alice:pw@proxy.example:3128")
    proxied = new_session(egress=egress, ca_bundle="/tmp/ca.pem")
    assert proxied.proxies == {"http": egress.url, "https": egress.url} and proxied.verify == "/tmp/ca.pem"
    with pytest.raises(ValueError, match="no other proxy"):
        new_session(identity=identity, proxy=ProxyEndpoint("127.0.0.1", 9050), egress=egress)


def test_the_source_address_of_tls_inside_a_tls_tunnel_is_read_from_the_socket_under_it() -> None:
    from types import SimpleNamespace

    from studybuddy.egress.sessions import _local_address

    class Wrapped:  # like urllib3's SSLTransport over an https:// proxy: no getsockname of its own
        def __init__(self, inner: object) -> None:
            self.socket = inner

    inner = SimpleNamespace(getsockname=lambda: ("127.0.0.1", 40123))
    response = SimpleNamespace(raw=SimpleNamespace(connection=SimpleNamespace(sock=Wrapped(inner))))
    assert _local_address(response) == ("127.0.0.1", 40123)  # type: ignore[arg-type]
    bare = SimpleNamespace(raw=SimpleNamespace(connection=SimpleNamespace(sock=object())))
    assert _local_address(bare) is None  # type: ignore[arg-type]
