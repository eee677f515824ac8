"""The SSRF guard for webhook delivery: which destinations are refused, why, and what passes."""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import socket
import threading
from collections.abc import Iterator
from typing import ClassVar

import httpx
import pytest

from agent_bom.connectors import netguard
from agent_bom.connectors.netguard import (
    IPAddress,
    Target,
    UnsafeDestination,
    check_url,
    describe,
    is_public,
    pinned_url,
    resolve,
)
from agent_bom.errors import ConfigError, DeliveryError


def fixed(*answers: str) -> netguard.Resolver:
    """A resolver that answers every name with ``answers``."""

    async def lookup(host: str, port: int) -> list[str]:
        return list(answers)

    return lookup


async def never_called(host: str, port: int) -> list[str]:
    raise AssertionError(f"resolver called for {host}")


def refusal(url: str, **kw: bool) -> str:
    with pytest.raises(UnsafeDestination) as info:
        check_url(url, **kw)
    return str(info.value)


# (URL, part of the reason). Checked with allow_http=True so http:// spellings reach the
# address checks.
REFUSED_ADDRESSES = [
    ("https://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
    ("https://127.8.9.10/", "loopback"),
    ("https://127.0.0.1:8443/", "loopback"),
    ("https://127.0.0.1./", "127.0.0.1 is a loopback address"),
    ("https://10.0.0.5/", "10.0.0.5 is a private address (RFC 1918)"),
    ("https://172.16.0.1/", "private address (RFC 1918)"),
    ("https://172.31.255.255/", "private address (RFC 1918)"),
    ("https://192.168.1.1/", "private address (RFC 1918)"),
    ("https://100.64.0.1/", "carrier-grade NAT address (RFC 6598)"),
    ("https://100.100.100.200/", "carrier-grade NAT"),  # Alibaba Cloud metadata
    ("https://169.254.169.254/latest/meta-data/", "link-local / cloud metadata"),
    ("https://192.0.0.192/", "IETF protocol assignment"),  # Oracle Cloud metadata
    ("https://198.18.0.1/", "benchmarking address (RFC 2544)"),
    ("https://0.0.0.0/", "unspecified"),
    ("https://224.0.0.1/", "multicast"),
    ("https://255.255.255.255/", "broadcast"),
    ("https://240.0.0.1/", "reserved"),
    ("https://metadata.google.internal/computeMetadata/v1/", "cloud metadata endpoint"),
    ("https://METADATA.Google.Internal./", "metadata.google.internal is a cloud metadata"),
    ("https://metadata/", "cloud metadata endpoint"),
    ("https://metadata.goog/", "cloud metadata endpoint"),
    ("https://instance-data/", "cloud metadata endpoint"),
    ("https://instance-data.ec2.internal/", "cloud metadata endpoint"),
    ("https://metadata.azure.internal/", "cloud metadata endpoint"),
    ("https://metadata.tencentyun.com/", "cloud metadata endpoint"),
    ("https://localhost/", "localhost is a loopback name"),
    ("https://hooks.localhost:8080/", "hooks.localhost is a loopback name"),
    ("https://[::1]/", "::1 is a loopback address"),
    ("https://[::]/", "unspecified"),
    ("https://[fc00::1]/", "unique local address (RFC 4193)"),
    ("https://[fd12::1]/", "unique local"),
    ("https://[fd00:ec2::254]/", "unique local"),  # AWS IMDS over IPv6
    ("https://[fe80::1]/", "link-local"),
    ("https://[fec0::1]/", "site-local"),
    ("https://[ff02::1]/", "multicast"),
    ("https://[::ffff:127.0.0.1]/", "IPv4-mapped loopback address (127.0.0.1)"),
    ("https://[::ffff:7f00:1]/", "IPv4-mapped loopback"),
    ("https://[::ffff:169.254.169.254]/", "IPv4-mapped link-local / cloud metadata"),
    ("https://[::127.0.0.1]/", "IPv4-compatible loopback"),
    ("https://[2002:7f00:1::]/", "6to4 loopback address (127.0.0.1)"),
    ("https://[2002:0a00:0001::]/", "6to4 private address (10.0.0.1, RFC 1918)"),
    ("https://[64:ff9b::7f00:1]/", "NAT64 loopback address (127.0.0.1)"),
    ("https://[64:ff9b::a00:1]/", "NAT64 private address (10.0.0.1, RFC 1918)"),
    ("https://[64:ff9b:1::a00:1]/", "local-use NAT64 address (RFC 8215)"),
    # Teredo, server 65.54.227.120, client 127.0.0.1 (stored XOR 0xffffffff).
    ("https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "Teredo loopback address (127.0.0.1)"),
    ("http://2130706433/", "read as 127.0.0.1"),
    ("https://2130706433/", "non-canonical numeric IPv4"),
    ("https://0177.0.0.1/", "read as 127.0.0.1"),
    ("https://0x7f000001/", "read as 127.0.0.1"),
    ("https://0x7f.0.0.1/", "read as 127.0.0.1"),
    ("https://0X7F.1/", "read as 127.0.0.1"),
    ("https://127.1/", "read as 127.0.0.1"),
    ("https://10.1/", "read as 10.0.0.1"),
    ("https://012.0.0.1/", "read as 10.0.0.1"),
    ("https://1.2.3.4.5/", "not a valid IPv4 address"),
    ("https://08.0.0.1/", "not a valid IPv4 address"),
    ("https://\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11/", "127.0.0.1 is a loopback"),
    ("https://[fe80::1%25eth0]/", "zone id"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_ADDRESSES)
def test_check_url_refuses_non_public_destination_and_says_why(url: str, reason: str) -> None:
    assert reason in refusal(url, allow_http=True)


# Inputs that URL parsers disagree about, or that smuggle credentials.
REFUSED_SPELLINGS = [
    ("https://user:pass@example.com/", "credential reference (env:NAME or file:/path)"),
    ("https://user@example.com/", "credentials or a user name"),
    ("https://example.com@127.0.0.1/", "credentials or a user name"),
    ("https://user:pass\uff20example.com/", "credentials or a user name"),
    ("https://127.0.0.1#@example.com/", "fragment"),
    ("https://example.com#@127.0.0.1/", "fragment"),
    ("https://example.com/hook#", "fragment"),
    ("https://example.com\\@127.0.0.1/", "backslash"),
    ("https://127.0.0.1\\.example.com/", "backslash"),
    ("https:\\\\127.0.0.1/", "backslash"),
    ("https://example.com\n.127.0.0.1/", "whitespace or a control character at position 19"),
    ("https://127.0.0.1\t/", "whitespace"),
    (" https://example.com/", "whitespace"),
    ("https://ex ample.com/", "whitespace"),
    ("https://127.0.0.%31/", "percent-encoded"),
    ("https://[::1/", "no closing ']'"),
    ("https://[::1]x/", "text follows the IPv6 literal"),
    ("https://[v1.fe80::1]/", "not a valid IPv6 address"),
    ("https://::1/", "must be in brackets"),
    ("https:example.com/hook", "not followed by '//'"),
    ("example.com/hook", "no scheme"),
    ("https:///hook", "no host"),
    ("https://:443/", "no host"),
    ("https://example.com:0/", "port"),
    ("https://example.com:65536/", "port"),
    ("https://example.com:+443/", "port"),
    ("https://example.com:\u0664\u0664\u0663/", "port"),  # Arabic-Indic digits
    ("https://exa$mple.com/", "not a valid hostname"),
    ("https://a..b.example/", "not a valid hostname"),
    ("https://" + "a" * 64 + ".example/", "not a valid hostname"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_SPELLINGS)
def test_check_url_refuses_ambiguous_or_credential_bearing_spelling(url: str, reason: str) -> None:
    assert reason in refusal(url, allow_http=True, allow_private_network=True)


REFUSED_SCHEMES = [
    ("http://example.com/", {}, "--allow-http"),
    ("HTTP://example.com/", {}, "plain http"),
    ("ftp://example.com/", {"allow_http": True}, "scheme 'ftp'"),
    ("file:///etc/passwd", {"allow_http": True}, "scheme 'file'"),
    ("gopher://127.0.0.1:6379/_INFO", {"allow_http": True}, "scheme 'gopher'"),
    ("ws://example.com/", {"allow_http": True}, "scheme 'ws'"),
    ("javascript:alert(1)", {"allow_http": True}, "scheme 'javascript'"),
]


@pytest.mark.parametrize(("url", "kw", "reason"), REFUSED_SCHEMES)
def test_check_url_refuses_schemes_other_than_https(
    url: str, kw: dict[str, bool], reason: str
) -> None:
    assert reason in refusal(url, **kw)


def test_unsafe_destination_is_a_config_error_with_exit_code_2() -> None:
    with pytest.raises(ConfigError) as info:
        check_url("https://10.0.0.5/")
    assert isinstance(info.value, UnsafeDestination)
    assert info.value.exit_code == 2


def test_refusal_names_the_part_the_problem_and_the_fix() -> None:
    message = refusal("https://10.0.0.5/hook")
    assert message == (
        "webhook destination https://10.0.0.5 refused: 10.0.0.5 is a private address "
        "(RFC 1918); pass --allow-private-network if this destination is meant to be internal"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2@example.com/",
        "https://user:hunter2\uff20example.com/",
        "https://10.0.0.5/services/T000/hunter2",
        "https://10.0.0.5/hook?token=hunter2",
        "https://example.com:hunter2/",
    ],
)
def test_refusal_never_echoes_secrets_from_userinfo_path_or_query(url: str) -> None:
    assert "hunter2" not in refusal(url)


def test_public_ip_literal_is_allowed_and_parsed() -> None:
    assert check_url("https://93.184.216.34/hook") == Target(
        url="https://93.184.216.34/hook",
        scheme="https",
        host="93.184.216.34",
        port=443,
        path="/hook",
    )


@pytest.mark.parametrize("host", ["172.32.0.1", "172.15.255.255", "8.8.8.8", "[2606:4700::1111]"])
def test_public_addresses_next_to_private_ranges_are_allowed(host: str) -> None:
    assert check_url(f"https://{host}/").port == 443


def test_hostname_is_lowercased_idna_encoded_and_loses_its_trailing_dot() -> None:
    target = check_url("https://Hooks.B\u00fccher.Example./in?x=1")
    assert target.host == "hooks.xn--bcher-kva.example"
    assert target.url == "https://hooks.xn--bcher-kva.example/in?x=1"


def test_path_defaults_to_slash_and_keeps_the_query() -> None:
    assert check_url("https://example.com").path == "/"
    assert check_url("https://example.com?a=1").path == "/?a=1"
    assert check_url("https://example.com/a/b?c=d&e").path == "/a/b?c=d&e"


def test_non_ascii_path_is_percent_encoded_and_escapes_are_kept() -> None:
    assert check_url("https://example.com/caf\u00e9/%2F").path == "/caf%C3%A9/%2F"


def test_default_port_is_dropped_from_the_url_and_others_kept() -> None:
    assert check_url("https://example.com:443/x").url == "https://example.com/x"
    assert check_url("https://example.com:/x").port == 443
    target = check_url("https://example.com:8443/x")
    assert (target.port, target.url) == (8443, "https://example.com:8443/x")


def test_host_header_brackets_ipv6_and_adds_non_default_port() -> None:
    assert check_url("https://example.com/").host_header == "example.com"
    assert check_url("https://example.com:8443/").host_header == "example.com:8443"
    assert check_url("https://[2606:4700::1111]:8443/").host_header == "[2606:4700::1111]:8443"


def test_http_is_allowed_with_allow_http_on_port_80() -> None:
    target = check_url("http://example.com/hook", allow_http=True)
    assert (target.scheme, target.port) == ("http", 80)


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.5/",
        "https://127.0.0.1:8080/",
        "https://169.254.169.254/",
        "https://[::1]/",
        "https://[fd12::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://localhost/",
        "https://metadata.google.internal/",
    ],
)
def test_private_destinations_pass_with_allow_private_network(url: str) -> None:
    check_url(url, allow_private_network=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://2130706433/", "non-canonical"),
        ("https://0177.0.0.1/", "non-canonical"),
        ("https://0x7f.0.0.1/", "non-canonical"),
        ("https://10.1/", "non-canonical"),
        ("https://[fe80::1%25eth0]/", "zone id"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://[::]/", "unspecified"),
        ("https://224.0.0.1/", "multicast"),
        ("https://[::ffff:224.0.0.1]/", "IPv4-mapped multicast"),
        ("https://255.255.255.255/", "broadcast"),
    ],
)
def test_some_destinations_are_refused_even_with_allow_private_network(
    url: str, reason: str
) -> None:
    assert reason in refusal(url, allow_private_network=True)


IS_PUBLIC = [
    ("93.184.216.34", True),
    ("8.8.8.8", True),
    ("172.32.0.1", True),
    ("2606:4700::1111", True),
    ("2a00:1450:4001:82b::200e", True),
    ("::ffff:8.8.8.8", True),  # IPv4-mapped public
    ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
    ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
    ("127.0.0.1", False),
    ("10.255.255.255", False),
    ("172.16.0.0", False),
    ("192.168.0.1", False),
    ("100.127.255.255", False),
    ("169.254.169.254", False),
    ("0.0.0.0", False),
    ("0.1.2.3", False),
    ("192.0.0.9", False),
    ("192.0.2.1", False),
    ("192.88.99.1", False),
    ("198.19.255.255", False),
    ("198.51.100.1", False),
    ("203.0.113.1", False),
    ("239.255.255.250", False),
    ("240.0.0.1", False),
    ("255.255.255.255", False),
    ("::", False),
    ("::1", False),
    ("::8.8.8.8", False),  # IPv4-compatible: deprecated, never routed
    ("::ffff:10.0.0.1", False),
    ("100::1", False),
    ("64:ff9b:1::808:808", False),  # local-use NAT64; Python 3.11 calls it global
    ("2001::1", False),
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", False),  # Teredo of public 8.8.8.8
    ("2001:db8::1", False),
    ("3fff::1", False),  # documentation (RFC 9637); Python 3.11 calls it global
    ("5f00::1", False),  # SRv6 SIDs, outside 2000::/3
    ("2002:c0a8:101::", False),
    ("fc00::1", False),
    ("fd12:3456::1", False),
    ("fe80::1", False),
    ("fe80::1%eth0", False),
    ("fec0::1", False),
    ("ff02::1", False),
]


@pytest.mark.parametrize(("addr", "public"), IS_PUBLIC)
def test_is_public_only_for_globally_routable_unicast(addr: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(addr)) is public


@pytest.mark.parametrize(
    ("addr", "text"),
    [
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private (RFC 1918)"),
        ("169.254.169.254", "link-local / cloud metadata"),
        ("100.64.0.1", "carrier-grade NAT (RFC 6598)"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback (127.0.0.1)"),
        ("2002:a00:1::", "6to4 private (10.0.0.1, RFC 1918)"),
        ("fd00::1", "unique local (RFC 4193)"),
        ("8.8.8.8", "public"),
    ],
)
def test_describe_gives_a_short_reason(addr: str, text: str) -> None:
    assert describe(ipaddress.ip_address(addr)) == text


def run_resolve(url: str, answers: list[str], **kw: bool) -> list[IPAddress]:
    target = check_url(url, allow_private_network=kw.get("allow_private_network", False))
    return asyncio.run(resolve(target, resolver=fixed(*answers), **kw))


def test_resolve_returns_checked_public_addresses_deduplicated_in_resolver_order() -> None:
    addrs = run_resolve(
        "https://hooks.example.com/", ["2606:4700::1111", "93.184.216.34", "2606:4700::1111"]
    )
    assert addrs == [ipaddress.ip_address("2606:4700::1111"), ipaddress.ip_address("93.184.216.34")]


def test_one_loopback_address_among_public_ones_refuses_the_name() -> None:
    with pytest.raises(UnsafeDestination) as info:
        run_resolve("https://hooks.example.com/", ["93.184.216.34", "127.0.0.1"])
    assert "hooks.example.com resolves to 127.0.0.1 is a loopback address" in str(info.value)
    assert "--allow-private-network" in str(info.value)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("10.1.2.3", "private address (RFC 1918)"),
        ("169.254.169.254", "link-local / cloud metadata"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("64:ff9b::7f00:1", "NAT64 loopback"),
        ("fe80::1%eth0", "link-local"),
    ],
)
def test_resolve_refuses_a_name_resolving_to_a_non_public_address(answer: str, reason: str) -> None:
    with pytest.raises(UnsafeDestination) as info:
        run_resolve("https://rebind.example.com/", [answer])
    assert reason in str(info.value)


def test_resolve_allows_private_answers_only_with_allow_private_network() -> None:
    addrs = run_resolve("https://intranet.example/", ["10.1.2.3"], allow_private_network=True)
    assert addrs == [ipaddress.ip_address("10.1.2.3")]


def test_resolve_refuses_multicast_answers_even_with_allow_private_network() -> None:
    with pytest.raises(UnsafeDestination, match="multicast"):
        run_resolve("https://intranet.example/", ["239.1.2.3"], allow_private_network=True)


def test_resolve_refuses_an_answer_that_is_not_an_ip_address() -> None:
    with pytest.raises(UnsafeDestination, match="not an IP address"):
        run_resolve("https://hooks.example.com/", ["93.184.216.34", "0x7f000001"])


def test_resolution_failure_is_a_transient_delivery_error() -> None:
    async def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    target = check_url("https://hooks.example.com/")
    with pytest.raises(DeliveryError, match=r"could not resolve hooks\.example\.com"):
        asyncio.run(resolve(target, resolver=failing))
    with pytest.raises(DeliveryError, match="no addresses"):
        asyncio.run(resolve(target, resolver=fixed()))


def test_resolve_skips_dns_for_ip_literals() -> None:
    target = check_url("https://[2606:4700::1111]/")
    assert asyncio.run(resolve(target, resolver=never_called)) == [
        ipaddress.ip_address("2606:4700::1111")
    ]


def test_resolve_refuses_localhost_by_name_before_dns() -> None:
    target = Target("https://localhost/", "https", "localhost", 443, "/")
    with pytest.raises(UnsafeDestination, match="localhost is a loopback name"):
        asyncio.run(resolve(target, resolver=never_called))


@pytest.mark.parametrize(
    ("host", "reason"),
    [("2130706433", "non-canonical"), ("LOCALHOST.", "loopback name"), ("10.0.0.1", "private")],
)
def test_resolve_rechecks_a_target_not_built_by_check_url(host: str, reason: str) -> None:
    target = Target(f"https://{host}/", "https", host, 443, "/")
    with pytest.raises(UnsafeDestination, match=reason):
        asyncio.run(resolve(target, resolver=never_called))


def test_name_resolving_to_loopback_via_real_getaddrinfo_is_refused() -> None:
    async def as_localhost(host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)
        return [str(info[4][0]) for info in infos]

    target = check_url("https://innocent.example/")
    with pytest.raises(UnsafeDestination, match=r"innocent\.example resolves to \S+ is a loopback"):
        asyncio.run(resolve(target, resolver=as_localhost))


def test_default_resolver_resolves_localhost_when_private_networks_are_allowed() -> None:
    target = check_url("https://localhost:8443/", allow_private_network=True)
    addrs = asyncio.run(resolve(target, allow_private_network=True))
    assert addrs
    assert all(addr.is_loopback for addr in addrs)


def test_pinned_url_swaps_in_the_address_and_keeps_port_and_path() -> None:
    target = check_url("https://hooks.example.com/in?x=1")
    pinned_v4 = pinned_url(target, ipaddress.IPv4Address("93.184.216.34"))
    assert pinned_v4 == "https://93.184.216.34:443/in?x=1"
    pinned_v6 = pinned_url(target, ipaddress.IPv6Address("2606:4700::1111"))
    assert pinned_v6 == "https://[2606:4700::1111]:443/in?x=1"


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, self.headers["Host"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_pinned_request_reaches_the_checked_address_with_the_original_host(
    loopback_server: int,
) -> None:
    target = check_url(
        f"http://hooks.example:{loopback_server}/in?x=1",
        allow_http=True,
        allow_private_network=True,
    )
    (addr,) = asyncio.run(resolve(target, allow_private_network=True, resolver=fixed("127.0.0.1")))
    _Recorder.seen.clear()
    response = httpx.post(
        pinned_url(target, addr),
        content=b"{}",
        headers={"Host": target.host_header},
        follow_redirects=False,
    )
    assert response.status_code == 204
    assert _Recorder.seen == [("/in?x=1", f"hooks.example:{loopback_server}")]
