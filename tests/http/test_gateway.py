"""The HTTP gateway: a Motoko web site served to browsers by canister id.

Spec: HTTP gateway protocol (canister from the host or ``canisterId``; upgrade to an
update call; streaming callbacks).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from icp.build import compile_motoko
from icp.candid import decode as candid_decode
from icp.candid import encode
from icp.crypto.user_sig import principal_of
from icp.execution.management import CanisterIdRecord, InstallCodeArgs, ProvisionalCreateArgs
from icp.http.gateway import GatewayError, canister_of
from icp.principal import Principal
from tests.http.helpers import ServerThread, call_body, decode, http, identity, new_ic

pytestmark = pytest.mark.timeout(120)
SITE = Path(__file__).resolve().parent / "site"
OWNER = identity(3)


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[ServerThread, Principal]]:
    server = ServerThread(new_ic(nodes=1, seed=5))
    mgmt = Principal.management_canister()
    create = encode(
        [ProvisionalCreateArgs],
        [{"amount": 10**13, "settings": {"controllers": [principal_of(OWNER)]},
          "specified_id": None, "sender_canister_version": None}],
    )  # fmt: skip
    body = call_body(OWNER, mgmt, "provisional_create_canister_with_cycles", create)
    status, _, data = http(f"{server.url}/api/v3/canister/aaaaa-aa/call", body)
    assert status == 200
    from icp.crypto.certificate import Certificate
    from icp.crypto.hashing import request_id

    rid = request_id(decode(body)["content"])
    cert = Certificate.from_cbor(decode(data)["certificate"])
    cid = candid_decode(cert.lookup_value([b"request_status", rid, b"reply"]), [CanisterIdRecord])[
        0
    ]["canister_id"]
    install = encode(
        [InstallCodeArgs],
        [{"mode": {"install": None}, "canister_id": cid, "wasm_module": compile_motoko(SITE),
          "arg": encode([], []), "sender_canister_version": None}],
    )  # fmt: skip
    status, _, data = http(
        f"{server.url}/api/v3/canister/{cid}/call", call_body(OWNER, mgmt, "install_code", install)
    )
    assert status == 200 and decode(data)["status"] == "replied"
    yield server, Principal(bytes(cid.raw))
    server.stop()


def browse(
    server: ServerThread, host: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"{server.url}{path}", data=body)
    request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_canister_is_named_by_host_or_query() -> None:
    cid = "bnz7o-iuaaa-aaaaa-qaaaa-cai"
    assert canister_of(f"{cid}.localhost:4943", {}) == Principal.from_text(cid)
    assert canister_of("127.0.0.1:4943", {"canisterId": cid}) == Principal.from_text(cid)
    assert canister_of("localhost:4943", {}) is None
    with pytest.raises(GatewayError):
        canister_of("nope.localhost", {})


def test_pages_headers_and_404_from_the_canister(site: tuple[ServerThread, Principal]) -> None:
    server, cid = site
    host = f"{cid}.localhost:{server.port}"
    status, headers, body = browse(server, host, "/")
    assert status == 200 and body.startswith(b"<h1>hello from a canister</h1><p>GET")
    assert headers["Content-Type"] == "text/html" and headers["X-Site"] == "icp"
    status, _, body = browse(server, host, "/missing/page")
    assert status == 404 and body == b"not found: /missing/page"
    status, _, body = browse(server, host, "/echo", b"x" * 999)
    assert (status, body) == (200, b"POST 999")
    status, _, body = browse(server, f"127.0.0.1:{server.port}", f"/?canisterId={cid}")
    assert status == 404 and body == f"not found: /?canisterId={cid}".encode()


def test_upgrade_to_update_calls_changes_state(site: tuple[ServerThread, Principal]) -> None:
    server, cid = site
    host = f"{cid}.localhost:{server.port}"
    first = browse(server, host, "/hit")[2]
    second = browse(server, host, "/hit")[2]
    n = int(first.decode().removeprefix("hits="))
    assert second == f"hits={n + 1}".encode()


def test_streaming_callbacks_are_followed(site: tuple[ServerThread, Principal]) -> None:
    server, cid = site
    status, _, body = browse(server, f"{cid}.localhost:{server.port}", "/stream")
    assert (status, body) == (200, b"part0;part1;part2;end")


def test_bad_hosts_missing_canisters_and_traversal(site: tuple[ServerThread, Principal]) -> None:
    server, cid = site
    status, _, body = browse(server, f"zz.localhost:{server.port}", "/")
    assert status == 400 and b"not a canister id" in body
    status, _, body = browse(server, f"127.0.0.1:{server.port}", "/index.html")
    assert status == 404 and b"canisterId" in body
    other = Principal.from_canister_index((cid.canister_index() or 0) + 9)
    status, _, body = browse(server, f"{other}.localhost:{server.port}", "/")
    assert status == 404 and b"not found" in body
    for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc"):
        status, _, body = browse(server, f"{cid}.localhost:{server.port}", path)
        assert status == 404 and b"root:" not in body
