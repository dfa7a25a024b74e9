"""A small synchronous agent for a running IC (what ``icp canister ...`` uses).

Theory of operation.  ``Agent`` fetches the root key from ``/api/v2/status`` (a
development instance's key, as agents do with ``fetchRootKey``), signs requests with
an Ed25519 identity, sends update calls to ``/api/v3/.../call`` and, on a 202, polls
``read_state`` for ``/request_status/<id>``; every certificate is verified (BLS,
delegation, canister range, freshness) before its answer is believed.  Query
responses are checked against the node keys of the subnet (read from a certified
``/subnet`` subtree).  This is an edge module: it uses the network and the clock.

Spec: interface spec §1 (HTTP interface), §1.6 (query signatures), §2.2
(certificate verification).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from icp.crypto import hashtree
from icp.crypto.certificate import Certificate
from icp.crypto.hashing import cbor_decode, cbor_encode, hash_of_map, request_id
from icp.crypto.user_sig import Ed25519Identity, principal_of, sign_request
from icp.principal import Principal

TTL: Final = 4 * 60 * 1_000_000_000
RESPONSE_DOMAIN: Final = b"\x0bic-response"


class AgentError(Exception):
    """A request that failed: transport, HTTP status, rejection or bad certificate."""

    def __init__(
        self, message: str, *, reject_code: int | None = None, error_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.reject_code = reject_code
        self.error_code = error_code


class Agent:
    """Talk to an IC over HTTP with verified answers.

    Spec: see module docstring.
    """

    def __init__(
        self, url: str, identity: Ed25519Identity | None = None, *, timeout: float = 60.0
    ) -> None:
        self.url = url.rstrip("/")
        self.identity = identity
        self.timeout = timeout
        self.sender = principal_of(identity) if identity is not None else Principal.anonymous()
        self._root_key: bytes | None = None
        self._node_keys: dict[bytes, bytes] = {}

    # -- transport ------------------------------------------------------------------------

    def _http(self, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, data=body)
        if body is not None:
            request.add_header("Content-Type", "application/cbor")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as err:
            text = err.read().decode(errors="replace").strip()
            raise AgentError(f"HTTP {err.code}: {text}") from None
        except urllib.error.URLError as err:
            raise AgentError(f"cannot reach {self.url}: {err.reason}") from None

    def status(self) -> dict[str, Any]:
        """Return the decoded ``/api/v2/status`` map."""
        _, data = self._http("/api/v2/status")
        return _map(data)

    @property
    def root_key(self) -> bytes:
        """The instance's root key (fetched once from the status endpoint)."""
        if self._root_key is None:
            self._root_key = bytes(self.status()["root_key"])
        return self._root_key

    def _envelope(self, content: dict[str, Any]) -> tuple[bytes, bytes]:
        rid = request_id(content)
        env: dict[str, Any] = {"content": content}
        if self.identity is not None:
            env["sender_pubkey"] = self.identity.public_key_der()
            env["sender_sig"] = sign_request(self.identity, rid)
        return rid, cbor_encode(env)

    def _content(self, request_type: str, **fields: Any) -> dict[str, Any]:
        return dict(
            fields,
            request_type=request_type,
            sender=self.sender.raw,
            ingress_expiry=time.time_ns() + TTL,
        )

    # -- requests -------------------------------------------------------------------------

    def read_state(self, ecid: Principal, paths: list[list[bytes]]) -> Certificate:
        """Return the verified certificate of ``paths`` read via ``ecid``."""
        _, body = self._envelope(self._content("read_state", paths=paths))
        _, data = self._http(f"/api/v2/canister/{ecid}/read_state", body)
        cert = Certificate.from_cbor(bytes(_map(data)["certificate"]))
        cert.verify(self.root_key, ecid, now=time.time_ns())
        return cert

    def call(
        self, canister_id: Principal, method: str, arg: bytes, *, ecid: Principal | None = None
    ) -> bytes:
        """Make an update call and return its certified reply; raise ``AgentError``."""
        target = ecid or canister_id
        content = self._content("call", canister_id=canister_id.raw, method_name=method, arg=arg)
        rid, body = self._envelope(content)
        status, data = self._http(f"/api/v3/canister/{target}/call", body)
        deadline = time.monotonic() + self.timeout
        while True:
            if status == 200:
                answer = _map(data)
                if answer.get("status") == "non_replicated_rejection":
                    raise _reject(answer)
                cert = Certificate.from_cbor(bytes(answer["certificate"]))
                cert.verify(self.root_key, target, now=time.time_ns())
            else:
                cert = self.read_state(target, [[b"request_status", rid]])
            outcome = _request_outcome(cert, rid)
            if outcome is not None:
                return outcome
            if time.monotonic() > deadline:
                raise AgentError(f"no certified answer for request 0x{rid.hex()} in time")
            time.sleep(0.1)
            status, data = 202, b""

    def query(self, canister_id: Principal, method: str, arg: bytes) -> bytes:
        """Make a query, check its node signature, and return the reply."""
        content = self._content("query", canister_id=canister_id.raw, method_name=method, arg=arg)
        rid, body = self._envelope(content)
        _, data = self._http(f"/api/v2/canister/{canister_id}/query", body)
        answer = _map(data)
        self._check_query_signatures(canister_id, rid, answer)
        if answer["status"] == "replied":
            return bytes(answer["reply"]["arg"])
        raise _reject(answer)

    def _check_query_signatures(
        self, canister_id: Principal, rid: bytes, answer: dict[str, Any]
    ) -> None:
        fields = {k: v for k, v in answer.items() if k != "signatures"}
        signatures = answer.get("signatures") or []
        if not signatures:
            raise AgentError("the query response carries no node signature")
        for sig in signatures:
            node = bytes(sig["identity"])
            key = self._node_keys.get(node) or self._fetch_node_key(canister_id, node)
            signed = dict(fields, timestamp=sig["timestamp"], request_id=rid)
            try:
                Ed25519PublicKey.from_public_bytes(key[-32:]).verify(
                    bytes(sig["signature"]), RESPONSE_DOMAIN + hash_of_map(signed)
                )
            except InvalidSignature:
                raise AgentError("a query response signature does not verify") from None

    def _fetch_node_key(self, canister_id: Principal, node: bytes) -> bytes:
        cert = self.read_state(canister_id, [[b"subnet"]])
        for subnet_id in _labels(cert.tree, [b"subnet"]):
            for node_id in _labels(cert.tree, [b"subnet", subnet_id, b"node"]):
                path = [b"subnet", subnet_id, b"node", node_id, b"public_key"]
                self._node_keys[node_id] = cert.lookup_value(path)
        if node not in self._node_keys:
            raise AgentError(f"node {Principal(node)} is not a node of the canister's subnet")
        return self._node_keys[node]


def _labels(tree: hashtree.HashTree, path: list[bytes]) -> list[bytes]:
    """Return the labels directly below ``path`` in a (pruned) tree."""
    found = hashtree.lookup_subtree(tree, path)
    if found.subtree is None:
        return []
    return [
        node.label for node in hashtree.flatten_forks(found.subtree)
        if isinstance(node, hashtree.Labeled)
    ]  # fmt: skip


def _request_outcome(cert: Certificate, rid: bytes) -> bytes | None:
    result = cert.lookup([b"request_status", rid, b"status"])
    status = getattr(result, "value", None)
    if status == b"replied":
        return cert.lookup_value([b"request_status", rid, b"reply"])
    if status == b"rejected":
        code = _leb128(cert.lookup_value([b"request_status", rid, b"reject_code"]))
        message = cert.lookup_value([b"request_status", rid, b"reject_message"]).decode()
        err = cert.lookup([b"request_status", rid, b"error_code"])
        error_code = getattr(err, "value", None)
        text = error_code.decode() if isinstance(error_code, bytes) else None
        suffix = f" ({text})" if text else ""
        raise AgentError(
            f"rejected (code {code}): {message}{suffix}", reject_code=code, error_code=text
        )
    if status == b"done":
        raise AgentError(f"request 0x{rid.hex()} is done; its reply was forgotten")
    return None


def _map(data: bytes) -> dict[str, Any]:
    value = cbor_decode(data)
    if not isinstance(value, Mapping):
        raise AgentError(f"expected a CBOR map, got {type(value).__name__}")
    return dict(value)


def _leb128(data: bytes) -> int:
    value = 0
    for i, byte in enumerate(data):
        value |= (byte & 0x7F) << (7 * i)
    return value


def _reject(answer: Any) -> AgentError:
    suffix = f" ({answer['error_code']})" if answer.get("error_code") else ""
    return AgentError(
        f"rejected (code {answer.get('reject_code')}): {answer.get('reject_message')}{suffix}",
        reject_code=answer.get("reject_code"),
        error_code=answer.get("error_code"),
    )


__all__ = ["Agent", "AgentError"]
