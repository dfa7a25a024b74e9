"""PocketIC-compatible testing API over an in-process ``InternetComputer``, plus envelope helpers.

Theory of operation.  ``PocketIC`` mirrors the class of the ``pocket-ic`` Python package
(constructor with a ``SubnetConfig``, ``create_canister``, ``install_code``,
``update_call``, ``query_call``, ``add_cycles``, ``get_cycles_balance``, time control,
``get_root_key``, ``topology``, ``set_sender`` ...), but there is no server: every call
builds a real CBOR envelope (signed when the sender is given as an identity,
anonymous otherwise, or "impersonated" for a bare principal as PocketIC allows) and
goes through the IC's ingress path, consensus and execution; the reply is the one
certified in the state tree.  Subnets have one node each by default (fast), like
PocketIC; pass ``nodes=4`` for real fault tolerance.

Differences from ``pocket-ic``: there is always an NNS subnet (its key is the root key
that certifies everything), so ``get_root_key`` never returns None; replies are
returned as bytes (``pocket-ic`` returns a list of ints for non-Candid replies).
Impersonated senders (a principal without a key) are accepted only through this API
and only as ingress that skips the signature check, exactly as PocketIC does.

Spec: pocket-ic Python package ``pocket_ic/pocket_ic.py`` (method names and
conventions); interface spec §1.2-§1.3 (envelopes).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from icp.candid import decode, encode
from icp.crypto.hashing import cbor_encode, request_id
from icp.crypto.user_sig import Ed25519Identity, Identity, principal_of, sign_request
from icp.execution.management import (
    CanisterIdRecord,
    InstallCodeArgs,
    ProvisionalCreateArgs,
    TopUpArgs,
)
from icp.ic import ICError, InternetComputer, SubnetKind
from icp.ic import SubnetConfig as SubnetSpec
from icp.principal import Principal

DEFAULT_TTL = 4 * 60 * 1_000_000_000
"""Request expiry used by these helpers: now + 4 min (within the 5 min + drift window)."""


# ---------------------------------------------------------------------------- envelopes


def call_content(
    request_type: str,
    sender: Principal,
    canister_id: Principal,
    method_name: str,
    arg: bytes,
    ingress_expiry: int,
    nonce: bytes | None = None,
) -> dict[str, Any]:
    """Return the content map of a ``call`` or ``query`` request.

    Spec: interface spec §1.3.
    """
    content: dict[str, Any] = {
        "request_type": request_type,
        "sender": sender.raw,
        "canister_id": canister_id.raw,
        "method_name": method_name,
        "arg": bytes(arg),
        "ingress_expiry": ingress_expiry,
    }
    if nonce is not None:
        content["nonce"] = nonce
    return content


def read_state_content(
    sender: Principal, paths: list[list[bytes | str]], ingress_expiry: int
) -> dict[str, Any]:
    """Return the content map of a ``read_state`` request.

    Spec: interface spec §1.3.
    """
    raw = [[p.encode() if isinstance(p, str) else bytes(p) for p in path] for path in paths]
    return {
        "request_type": "read_state",
        "sender": sender.raw,
        "paths": raw,
        "ingress_expiry": ingress_expiry,
    }


def envelope(content: Mapping[str, Any], identity: Identity | None = None) -> bytes:
    """Return the CBOR envelope of ``content``, signed by ``identity`` (None: anonymous).

    Spec: interface spec §1.2 (``sender_sig`` over ``"\\x0Aic-request" || request_id``).
    """
    env: dict[str, Any] = {"content": dict(content)}
    if identity is not None:
        env["sender_pubkey"] = identity.public_key_der()
        env["sender_sig"] = sign_request(identity, request_id(content))
    return cbor_encode(env)


# ---------------------------------------------------------------------------- pocket-ic


class SubnetKindPIC:
    """Names of ``pocket_ic.SubnetKind`` members (values as the package spells them)."""

    APPLICATION = "Application"
    NNS = "NNS"
    SYSTEM = "System"


class SubnetConfig:
    """Which subnets a ``PocketIC`` instance has (``pocket_ic.SubnetConfig``).

    ``bitcoin``, ``fiduciary``, ``ii`` and ``sns`` become system (NNS-like, fee-free
    where the IC says so) or application subnets as on mainnet: fiduciary is an
    application subnet, the others system subnets.
    """

    def __init__(
        self,
        application: int = 0,
        bitcoin: bool = False,
        fiduciary: bool = False,
        ii: bool = False,
        nns: bool = False,
        sns: bool = False,
        system: int = 0,
    ) -> None:
        self.application = application
        self.bitcoin = bitcoin
        self.fiduciary = fiduciary
        self.ii = ii
        self.nns = nns
        self.sns = sns
        self.system = system

    def validate(self) -> None:
        """Raise ``ValueError`` for an empty or negative configuration (as pocket-ic)."""
        if not (
            self.bitcoin
            or self.fiduciary
            or self.ii
            or self.nns
            or self.sns
            or self.system
            or self.application
        ):
            raise ValueError("At least one subnet must be configured.")
        if self.application < 0 or self.system < 0:
            raise ValueError("The number of application and system subnets must be non-negative.")

    def specs(self, nodes: int) -> list[tuple[str, SubnetSpec]]:
        """Return (pocket-ic kind name, subnet spec) in creation order; NNS first."""
        out = [("NNS", SubnetSpec(SubnetKind.NNS, nodes))]
        for flag, name in ((self.ii, "II"), (self.bitcoin, "Bitcoin"), (self.sns, "SNS")):
            if flag:
                out.append((name, SubnetSpec(SubnetKind.SYSTEM, nodes)))
        if self.fiduciary:
            out.append(("Fiduciary", SubnetSpec(SubnetKind.APPLICATION, nodes)))
        out += [("System", SubnetSpec(SubnetKind.SYSTEM, nodes))] * self.system
        out += [("Application", SubnetSpec(SubnetKind.APPLICATION, nodes))] * self.application
        return out


def _principal(value: Any) -> Principal:
    """Accept ``icp.Principal``, ``ic.Principal`` (ic-py), bytes or text."""
    if isinstance(value, Principal):
        return value
    if isinstance(value, bytes | bytearray):
        return Principal(bytes(value))
    if isinstance(value, str):
        return Principal.from_text(value)
    raw = getattr(value, "bytes", None)
    if isinstance(raw, bytes | bytearray):
        return Principal(bytes(raw))
    raise TypeError(f"not a principal: {value!r}")


class PocketIC:
    """A drop-in for ``pocket_ic.PocketIC``, running an in-process IC (no server).

    Spec: pocket-ic package (``PocketIC``); see module docstring.
    """

    def __init__(
        self,
        subnet_config: SubnetConfig | None = None,
        *,
        nodes: int = 1,
        seed: bytes | int = 0,
        state_dir: str | Path | None = None,
        time: int | None = None,
    ) -> None:
        """Create an instance (default: one application subnet, plus the NNS)."""
        config = subnet_config if subnet_config is not None else SubnetConfig(application=1)
        config.validate()
        named = config.specs(nodes)
        kwargs: dict[str, Any] = {} if time is None else {"time": time}
        # PocketIC lets a test act as any principal (set_sender) without its key, as the
        # pocket-ic server does: the IC runs in its trusted test mode.
        self.ic = InternetComputer(
            [spec for _, spec in named],
            seed=seed,
            state_dir=state_dir,
            authenticate_senders=False,
            **kwargs,
        )
        self.topology: dict[Principal, str] = {
            subnet.subnet_id: name for (name, _), subnet in zip(named, self.ic.subnets, strict=True)
        }
        self._default_subnet = next(
            (s for s in self.ic.subnets if self.topology[s.subnet_id] == "Application"),
            self.ic.subnets[-1],
        )
        self.sender: Any = Principal.anonymous()
        self._submitted: dict[bytes, Principal] = {}
        self.ic.tick()

    def __del__(self) -> None:
        """Release the instance at once (``del pic``)."""
        ic = getattr(self, "ic", None)
        if ic is not None:
            ic.close()

    # -- identity -------------------------------------------------------------------------

    def set_anonymous_sender(self) -> None:
        """Send the following calls as the anonymous principal."""
        self.sender = Principal.anonymous()

    def set_sender(self, principal: Any) -> None:
        """Send the following calls as ``principal`` (a principal or an ``Identity``).

        A bare principal needs no key: like the pocket-ic server, this instance does
        not check senders' signatures; an ``Identity`` signs its requests anyway.
        """
        self.sender = principal

    def _identity(self) -> tuple[Principal, Identity | None]:
        if isinstance(self.sender, Ed25519Identity) or hasattr(self.sender, "sign"):
            return principal_of(self.sender), self.sender
        return _principal(self.sender), None

    # -- time and topology ---------------------------------------------------------------

    def get_root_key(self) -> bytes:
        """Return the IC root key (DER) that verifies every certificate."""
        return self.ic.root_key

    def get_time(self) -> dict[str, int]:
        """Return ``{'nanos_since_epoch': t}`` (the IC's current time)."""
        return {"nanos_since_epoch": self.ic.time()}

    def set_time(self, time_nanosec: int) -> None:
        """Set the IC's time (forward only: IC time is monotone)."""
        self.ic.set_time(time_nanosec)

    def advance_time(self, nanosecs: int) -> None:
        """Move the IC's time forward by ``nanosecs``."""
        self.ic.set_time(self.ic.time() + nanosecs)

    def tick(self) -> None:
        """Let every subnet finalize, execute and certify one more height."""
        self.ic.tick()

    def get_subnet(self, canister_id: Any) -> Principal | None:
        """Return the id of the subnet hosting ``canister_id`` (None if it does not exist)."""
        cid = _principal(canister_id)
        try:
            subnet = self.ic.subnet_of(cid)
        except ICError:
            return None
        state, _ = subnet.serving_replica().certified()
        return subnet.subnet_id if state.canister(cid) is not None else None

    def check_canister_exists(self, canister_id: Any) -> bool:
        """Return whether the canister exists."""
        return self.get_subnet(canister_id) is not None

    def _canister(self, canister_id: Any) -> Any:
        cid = _principal(canister_id)
        subnet = self.ic.subnet_of(cid)
        state, _ = subnet.serving_replica().certified()
        canister = state.canister(cid)
        if canister is None:
            raise ValueError(f"IC0301: Canister {cid} not found")
        return canister

    def get_cycles_balance(self, canister_id: Any) -> int:
        """Return the canister's cycles balance (certified state)."""
        return int(self._canister(canister_id).cycles)

    def get_stable_memory(self, canister_id: Any) -> bytes:
        """Return the canister's stable memory contents."""
        runtime = self._canister(canister_id).runtime
        if runtime is None:
            return b""
        stable = runtime.stable
        size = stable.size_bytes() if hasattr(stable, "size_bytes") else 0
        return bytes(stable.read(0, size)) if size else b""

    # -- calls ----------------------------------------------------------------------------

    def _submit(
        self, canister_id: Principal, method: str, payload: bytes, ecid: Principal
    ) -> bytes:
        sender, identity = self._identity()
        content = call_content(
            "call", sender, canister_id, method, payload, self.ic.time() + DEFAULT_TTL,
            nonce=hashlib.sha256(self.ic.seed + self.ic.time().to_bytes(16, "big")).digest()[:8]
            + self._next_nonce(),
        )  # fmt: skip
        return self.ic.submit_call(envelope(content, identity), ecid)

    def _next_nonce(self) -> bytes:
        self._nonce = getattr(self, "_nonce", 0) + 1
        return self._nonce.to_bytes(8, "big")

    def update_call_with_effective_principal(
        self, canister_id: Any, effective_principal: Any, method: str, payload: bytes
    ) -> bytes:
        """Make an update call; ``effective_principal``: ``{"CanisterId"|"SubnetId": ...}``.

        Returns the reply bytes; raises ``ValueError`` with the IC's error code and
        message if the call is rejected (as pocket-ic does).
        """
        cid = (
            _principal(canister_id) if canister_id is not None else Principal.management_canister()
        )
        ecid = self._effective(cid, effective_principal, method, payload)
        try:
            rid = self._submit(cid, method, payload, ecid)
        except ICError as exc:
            raise ValueError(f"{exc.error_code}: {exc.message}".strip(": ")) from None
        return self._reply_of(rid, ecid)

    def _reply_of(self, request_id: bytes, ecid: Principal) -> bytes:
        """Run until ``request_id`` is answered; return the reply or raise ``ValueError``."""
        try:
            result = self.ic.wait_for(request_id, ecid)
        except ICError as exc:
            raise ValueError(f"{exc.error_code}: {exc.message}".strip(": ")) from None
        if result.status != "replied" or result.reply is None:
            raise ValueError(
                f"{result.error_code or ''}: Canister rejected the message "
                f"(reject code {result.reject_code}): {result.reject_message}"
            )
        return result.reply

    def _effective(self, cid: Principal, effective: Any, method: str, payload: bytes) -> Principal:
        if isinstance(effective, Mapping):
            if "CanisterId" in effective:
                return _principal(_b64(effective["CanisterId"]))
            if "SubnetId" in effective:
                subnet = self.ic.subnet(_principal(_b64(effective["SubnetId"])))
                return subnet.ranges[0].start
        if not cid.is_management_canister:
            return cid
        if method == "provisional_create_canister_with_cycles":
            return self._default_subnet.ranges[0].start
        try:
            record = decode(payload, [CanisterIdRecord])[0]
            return _principal(record["canister_id"])
        except Exception:
            return self._default_subnet.ranges[0].start

    def submit_call(self, canister_id: Any, method: str, payload: bytes) -> bytes:
        """Submit an update call without waiting; return its request id (Rust PocketIC)."""
        cid = (
            _principal(canister_id) if canister_id is not None else Principal.management_canister()
        )
        ecid = self._effective(cid, None, method, payload)
        try:
            rid = self._submit(cid, method, payload, ecid)
        except ICError as exc:
            raise ValueError(f"{exc.error_code}: {exc.message}".strip(": ")) from None
        self._submitted[rid] = ecid
        return rid

    def ingress_status(self, request_id: bytes) -> str | None:
        """Return the certified status of a submitted call (None: unknown yet)."""
        ecid = self._submitted.get(request_id)
        if ecid is None:
            return None
        status = self.ic.request_status(request_id, ecid)
        return None if status is None else status.status.value

    def await_call(self, request_id: bytes) -> bytes:
        """Run until a submitted call is answered; return the reply (``ValueError`` if rejected)."""
        ecid = self._submitted.get(request_id)
        if ecid is None:
            raise ValueError(f"request 0x{request_id.hex()} was not submitted here")
        return self._reply_of(request_id, ecid)

    def update_call(self, canister_id: Any, method: str, payload: bytes) -> bytes:
        """Make an update call (``None``: the management canister); return the reply."""
        return self.update_call_with_effective_principal(canister_id, None, method, payload)

    def query_call(self, canister_id: Any, method: str, payload: bytes) -> bytes:
        """Make a query call on one replica; return the reply (``ValueError`` if rejected)."""
        cid = (
            _principal(canister_id) if canister_id is not None else Principal.management_canister()
        )
        sender, identity = self._identity()
        try:
            subnet = self.ic.subnet_of(cid)
        except ICError as exc:
            raise ValueError(f"{exc.error_code}: {exc.message}") from None
        response = self.ic.run_query(subnet.serving_replica(), sender, cid, method, payload)
        del identity
        data = getattr(response, "data", None)
        if data is None:
            raise ValueError(
                f"{getattr(response, 'error_code', '')}: {getattr(response, 'message', '')}"
            )
        return bytes(data)

    # -- canisters ------------------------------------------------------------------------

    def create_canister(
        self, settings: Any = None, subnet: Any = None, canister_id: Any = None
    ) -> Principal:
        """Create an empty canister (on ``subnet``, or with ``canister_id``); return its id."""
        arg = encode(
            [ProvisionalCreateArgs],
            [
                {
                    "amount": None,
                    "settings": settings,
                    "specified_id": None if canister_id is None else _principal(canister_id),
                    "sender_canister_version": None,
                }
            ],
        )
        if canister_id is not None:
            ecid = _principal(canister_id)
        elif subnet is not None:
            ecid = self.ic.subnet(_principal(subnet)).ranges[0].start
        else:
            ecid = self._default_subnet.ranges[0].start
        reply = self.update_call_with_effective_principal(
            None, {"CanisterId": ecid}, "provisional_create_canister_with_cycles", arg
        )
        return _principal(decode(reply, [CanisterIdRecord])[0]["canister_id"])

    def _install(self, canister_id: Any, wasm_module: bytes, arg: Any, mode: Any) -> None:
        cid = _principal(canister_id)
        if isinstance(arg, list):
            arg = _encode_icpy_args(arg)
        payload = encode(
            [InstallCodeArgs],
            [
                {
                    "mode": mode,
                    "canister_id": cid,
                    "wasm_module": bytes(wasm_module),
                    "arg": bytes(arg or encode([], [])),
                    "sender_canister_version": None,
                }
            ],
        )
        self.update_call_with_effective_principal(
            None, {"CanisterId": cid}, "install_code", payload
        )

    def install_code(self, canister_id: Any, wasm_module: bytes, arg: Any) -> None:
        """Install ``wasm_module`` (raw or gzip-compressed) with init ``arg`` (Candid bytes)."""
        self._install(canister_id, wasm_module, arg, {"install": None})

    def reinstall_code(self, canister_id: Any, wasm_module: bytes, arg: Any) -> None:
        """Reinstall (wipe state, run init)."""
        self._install(canister_id, wasm_module, arg, {"reinstall": None})

    reinstall_canister = reinstall_code

    def upgrade_canister(self, canister_id: Any, wasm_module: bytes, arg: Any) -> None:
        """Upgrade (pre_upgrade, keep stable memory, post_upgrade).

        Like dfx, a module declaring enhanced orthogonal persistence (Motoko's
        ``icp:private enhanced-orthogonal-persistence`` section) is upgraded with
        ``wasm_memory_persistence = keep``.
        """
        keep = b"enhanced-orthogonal-persistence" in gunzip(bytes(wasm_module))
        options = (
            {"skip_pre_upgrade": None, "wasm_memory_persistence": {"keep": None}} if keep else None
        )
        self._install(canister_id, wasm_module, arg, {"upgrade": options})

    def _management(self, method: str, canister_id: Any) -> bytes:
        cid = _principal(canister_id)
        arg = encode([CanisterIdRecord], [{"canister_id": cid}])
        return self.update_call_with_effective_principal(None, {"CanisterId": cid}, method, arg)

    def uninstall_canister(self, canister_id: Any) -> None:
        """Remove the canister's code and state."""
        self._management("uninstall_code", canister_id)

    def start_canister(self, canister_id: Any) -> None:
        """Start the canister."""
        self._management("start_canister", canister_id)

    def stop_canister(self, canister_id: Any) -> None:
        """Stop the canister."""
        self._management("stop_canister", canister_id)

    def delete_canister(self, canister_id: Any) -> None:
        """Delete a stopped canister."""
        self._management("delete_canister", canister_id)

    def canister_status(self, canister_id: Any) -> dict[str, Any]:
        """Return the decoded ``canister_status`` record."""
        from icp.execution.management import CanisterStatusResult

        reply = self._management("canister_status", canister_id)
        return dict(decode(reply, [CanisterStatusResult])[0])

    def add_cycles(self, canister_id: Any, amount: int) -> int:
        """Top up the canister by ``amount`` cycles; return its new balance."""
        cid = _principal(canister_id)
        arg = encode([TopUpArgs], [{"canister_id": cid, "amount": amount}])
        self.update_call_with_effective_principal(
            None, {"CanisterId": cid}, "provisional_top_up_canister", arg
        )
        return self.get_cycles_balance(cid)

    def create_and_install_canister_with_candid(
        self, candid: str, wasm_module: bytes, init_args: Any = None, subnet: Any = None
    ) -> Any:
        """Create, fund and install a canister; return an ``ic.Canister`` (needs ic-py)."""
        cid = self.create_canister(subnet=subnet)
        try:
            ic = _icpy()
        except ImportError:
            ic = None
        if ic is not None:
            canister = ic.Canister(self, ic.Principal(cid.raw), candid)
            arguments = canister.actor["arguments"]
            arg = [] if not arguments else [{"type": arguments[0], "value": init_args}]
            self.add_cycles(cid, 2_000_000_000_000)
            self.install_code(cid, wasm_module, ic.encode(arg))
            return canister
        self.add_cycles(cid, 2_000_000_000_000)
        self.install_code(cid, wasm_module, init_args if isinstance(init_args, bytes) else None)
        return cid

    # -- ic-py Agent compatibility -------------------------------------------------------

    def query_raw(
        self, canister_id: Any, name: str, arguments: bytes, return_types: Any, _ecid: Any = None
    ) -> Any:
        """``ic.Agent.query_raw`` (used by ``ic.Canister``)."""
        ic = _icpy()

        return ic.decode(self.query_call(canister_id, name, arguments), return_types)

    def update_raw(
        self, canister_id: Any, name: str, arguments: bytes, return_types: Any, _ecid: Any = None
    ) -> Any:
        """``ic.Agent.update_raw`` (used by ``ic.Canister``)."""
        ic = _icpy()

        return ic.decode(self.update_call(canister_id, name, arguments), return_types)


def _icpy() -> Any:
    """Return the ``ic`` module of ic-py (raises ImportError when it is not installed)."""
    import importlib

    return importlib.import_module("ic")


def _b64(value: Any) -> bytes:
    import base64

    if isinstance(value, str):
        return base64.b64decode(value)
    return bytes(_principal(value).raw)


def _encode_icpy_args(arg: list[Any]) -> bytes:
    ic = _icpy()

    return bytes(ic.encode(arg))


def is_gzip(wasm: bytes) -> bool:
    """Return whether a module is gzip-compressed (the IC accepts both)."""
    return wasm[:2] == b"\x1f\x8b"


def gunzip(wasm: bytes) -> bytes:
    """Return the decompressed module (or ``wasm`` unchanged)."""
    return gzip.decompress(wasm) if is_gzip(wasm) else wasm


__all__ = [
    "PocketIC",
    "SubnetConfig",
    "SubnetKindPIC",
    "call_content",
    "envelope",
    "read_state_content",
]
