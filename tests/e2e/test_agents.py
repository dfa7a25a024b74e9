"""Real IC agents against ``icp start``: @dfinity/agent 3.x (node) and icp-py-core.

Each client verifies certificates (BLS, NNS delegation) and query signatures
(node Ed25519 keys from the subnet's read_state) with its own code, unchanged.
Spec: interface spec §1 (HTTP interface), §2 (certification).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cbor2
import pytest
from icp_agent.agent import sign_request
from icp_certificate.certificate import Certificate
from icp_core.errors import QuerySignatureVerificationFailed

from icp.candid import encode
from icp.candid.types import Nat
from icp.crypto import bls
from icp.crypto.hashing import cbor_decode
from icp.execution.management import InstallCodeArgs, ProvisionalCreateArgs
from icp.principal import Principal
from tests.e2e.helpers import REPO, IcpProcess, free_port

pytestmark = pytest.mark.timeout(120)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_agent_js_creates_installs_calls_and_reads_state(
    icp_server: IcpProcess, counter_wasm: Path
) -> None:
    done = subprocess.run(
        ["node", str(REPO / "tests/e2e/agent_js.mjs"), icp_server.url, str(counter_wasm),
         icp_server.app_range_start],
        capture_output=True, text=True, timeout=90, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # the canister landed on the application subnet, in its range
    cid = Principal.from_text(out["canisterId"])
    assert (cid.canister_index() or 0) >= 0x8000000000100000
    assert (out["inc1"], out["add"], out["get"]) == ("1", "42", "42")
    # the trap was certified as rejected (code 5, IC0503) and rolled back
    assert "Reject code: 5" in out["trap"] and "IC0503" in out["trap"]
    assert out["getAfterTrap"] == "42" and out["anonGet"] == "42"
    # read_state: controllers (the delegating root key's principal), module hash, node keys
    assert out["controllers"] == [out["principal"]]
    wasm_hash = hashlib.sha256(counter_wasm.read_bytes()).hexdigest()
    assert out["moduleHash"] == wasm_hash
    assert out["nodeKeys"] == 4
    assert abs(out["time"] - __import__("time").time() * 1000) < 120_000


def test_icp_py_core_agent(icp_server: IcpProcess, counter_wasm: Path) -> None:
    """icp-py-core: signed updates, signature-checked queries, read_state.

    icp-py-core verifies BLS only through the official ``blst`` SWIG binding, which
    is not on PyPI; its certificate code still does everything else (CBOR, tree
    lookups, delegation, sharded canister ranges) and hands back the signature, the
    message and the key (``backend="return_materials"``), which we check with BLS.
    """
    from icp_agent import Agent, Client
    from icp_identity import Identity

    client = Client(url=icp_server.url)
    root_key = cbor_decode(client.status())["root_key"]
    agent = Agent(Identity(), client, root_key=root_key, verify_query_signatures=True)
    me = Principal(agent.get_principal().bytes)
    create = encode(
        [ProvisionalCreateArgs],
        [{"amount": 10**13, "settings": {"controllers": [me]}, "specified_id": None,
          "sender_canister_version": None}],
    )  # fmt: skip
    reply = agent.update(
        "aaaaa-aa", "provisional_create_canister_with_cycles", create,
        effective_canister_id=icp_server.app_range_start, verify_certificate=False,
    )  # fmt: skip
    record = _values(reply)[0]
    cid = Principal.from_text(str(next(iter(record.values()))))
    install = encode(
        [InstallCodeArgs],
        [{"mode": {"install": None}, "canister_id": cid, "wasm_module": counter_wasm.read_bytes(),
          "arg": encode([], []), "sender_canister_version": None}],
    )  # fmt: skip
    agent.update(
        "aaaaa-aa", "install_code", install, effective_canister_id=cid.to_text(),
        verify_certificate=False,
    )  # fmt: skip
    add = agent.update(cid.to_text(), "add", encode([Nat], [5]), verify_certificate=False)
    assert _values(add) == [5]
    got = agent.query(cid.to_text(), "get", encode([], []), verify_query_signatures=False)
    assert _values(got) == [5]
    # The query's node signature, checked by the agent's own verifier against the node
    # keys it reads from the subnet.  (icp-py-core's query path sees cbor2 6's tuples
    # inside the self-describe tag as "no signatures", so we call its verifier directly.)
    content = {
        "request_type": "query", "sender": me.raw, "canister_id": cid.raw,
        "method_name": "get", "arg": encode([], []), "ingress_expiry": agent.get_expiry_date(),
    }  # fmt: skip
    rid, body = sign_request(content, agent.identity)
    result = _thaw(agent.query_endpoint(cid.to_text(), body))
    assert result["status"] == "replied" and len(result["signatures"]) == 1
    agent._verify_query_response_signatures(result, rid, cid.to_text())
    result["reply"]["arg"] = encode([Nat], [6])
    with pytest.raises(QuerySignatureVerificationFailed):
        agent._verify_query_response_signatures(result, rid, cid.to_text())
    cert = agent.read_state_raw(
        cid.to_text(), [[b"canister", cid.raw, b"module_hash"]], verify_certificate=False
    )
    assert (
        cert.lookup([b"canister", cid.raw, b"module_hash"])
        == hashlib.sha256(counter_wasm.read_bytes()).digest()
    )
    cert.verify_cert_timestamp(5 * 60 * 10**9)
    materials = cert.verify_cert(cid.raw, backend="return_materials")
    assert bls.verify(materials["bls_public_key"], materials["message"], materials["signature"])
    # and the delegation the client accepted is signed by the root key from /api/v2/status
    parent = Certificate(cbor2.loads(cert.delegation["certificate"]))
    pm = parent.verify_cert(cid.raw, backend="return_materials")
    # (with no delegation the client's materials name its built-in mainnet key; ours is
    # the root key from /api/v2/status)
    assert bls.verify(bls.public_key_from_der(root_key), pm["message"], pm["signature"])
    # a forged signature is refused by the same check
    forged = bytes(materials["signature"][:-1]) + bytes([materials["signature"][-1] ^ 1])
    assert not bls.verify(materials["bls_public_key"], materials["message"], forged)


def _thaw(value: Any) -> Any:
    """Return ``value`` with cbor2's frozen dicts and tuples made plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


def _values(reply: object) -> list[Any]:
    """Return the decoded values of an icp-py-core reply (``[{type, value}, ...]``)."""
    assert isinstance(reply, list), reply
    return [item["value"] for item in reply]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_agent_js_polling_path(counter_wasm: Path) -> None:
    """With /api/v3 answering 202 at once, agent-js polls read_state for every call."""
    server = IcpProcess(["--nodes", "1", "--sync-call-timeout", "0"], free_port())
    try:
        done = subprocess.run(
            ["node", str(REPO / "tests/e2e/agent_js.mjs"), server.url, str(counter_wasm),
             server.app_range_start],
            capture_output=True, text=True, timeout=90, cwd=REPO,
        )  # fmt: skip
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert (out["inc1"], out["add"], out["get"]) == ("1", "42", "42")
