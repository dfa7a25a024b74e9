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

A suite written for ``pocket-ic`` runs unchanged with ``from icp.testing import
PocketIC, SubnetConfig, SubnetKind`` (pocket-ic's own suite and examples do, in
tests/testing/pocketic_py): same types (ic-py's when installed), reply and exception
conventions; see ``PocketIC`` for what differs.  Impersonated senders (a principal
without a key) are accepted only through this API and only as ingress that skips the
signature check, exactly as PocketIC does.

Spec: pocket-ic Python package ``pocket_ic/pocket_ic.py`` (method names and
conventions); interface spec §1.2-§1.3 (envelopes).
"""

from __future__ import annotations

import base64
import enum
import functools
import gzip
import hashlib
import importlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from icp.candid import decode, encode
from icp.crypto.hashing import cbor_encode, request_id
from icp.crypto.user_sig import Identity, principal_of, sign_request
from icp.execution.canister import CanisterState
from icp.execution.errors import ErrorCode, RejectCode
from icp.execution.management import (
    CanisterIdRecord,
    CanisterStatusResult,
    InstallCodeArgs,
    ProvisionalCreateArgs,
    TopUpArgs,
    UpdateSettingsArgs,
)
from icp.execution.system_api import Reject
from icp.ic import ICError, InternetComputer, Subnet
from icp.ic import SubnetConfig as SubnetSpec
from icp.ic import SubnetKind as ICSubnetKind
from icp.messaging.routing import CANISTER_IDS_PER_SUBNET, CanisterIdRange
from icp.nns.registry import RegistryError, RoutingTableEntry
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


class SubnetKind(enum.StrEnum):
    """The kind of a subnet, as ``pocket_ic.SubnetKind`` names it.

    A ``str`` enum, so ``SubnetKind.APPLICATION == "Application"`` holds as well.
    Spec: pocket-ic package ``pocket_ic/subnet_config.py``.
    """

    APPLICATION = "Application"
    BITCOIN = "Bitcoin"
    FIDUCIARY = "Fiduciary"
    II = "II"
    NNS = "NNS"
    SNS = "SNS"
    SYSTEM = "System"
    VERIFIED_APPLICATION = "VerifiedApplication"


SubnetKindPIC = SubnetKind
"""Earlier name of ``SubnetKind``."""

_IC_KIND: Final[Mapping[SubnetKind, ICSubnetKind]] = {
    SubnetKind.NNS: ICSubnetKind.NNS,
    SubnetKind.APPLICATION: ICSubnetKind.APPLICATION,
    SubnetKind.VERIFIED_APPLICATION: ICSubnetKind.APPLICATION,
    SubnetKind.FIDUCIARY: ICSubnetKind.APPLICATION,
    SubnetKind.II: ICSubnetKind.SYSTEM,
    SubnetKind.BITCOIN: ICSubnetKind.SYSTEM,
    SubnetKind.SNS: ICSubnetKind.SYSTEM,
    SubnetKind.SYSTEM: ICSubnetKind.SYSTEM,
}
"""How each PocketIC kind runs here: fiduciary and verified subnets are application
subnets on mainnet; II, Bitcoin and SNS are system subnets (protocol digest §3.2)."""

TOPOLOGY_FILE: Final = "topology.json"
"""The file in an instance's state directory that records its subnets (as pocket-ic)."""


class SubnetConfig:
    """Which subnets a ``PocketIC`` instance has (``pocket_ic.SubnetConfig``).

    ``state_dir``: an empty directory stores the new instance's state there; a
    directory a previous instance used restores it (subnets, canisters, time).
    ``add_subnet_with_state`` loads one subnet from a previous instance's directory
    (``<state_dir>/<key>`` with ``<key>`` from its ``topology.json``).
    Spec: pocket-ic package ``pocket_ic/subnet_config.py``.
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
        verified_application: int = 0,
        state_dir: str | Path | None = None,
    ) -> None:
        self.application = application
        self.bitcoin = bitcoin
        self.fiduciary = fiduciary
        self.ii = ii
        self.nns = nns
        self.sns = sns
        self.system = system
        self.verified_application = verified_application
        self.state_dir = state_dir
        self.from_state: list[tuple[SubnetKind, Path]] = []

    def __repr__(self) -> str:
        return (
            f"SubnetConfig(application={self.application}, bitcoin={self.bitcoin}, "
            f"fiduciary={self.fiduciary}, ii={self.ii}, nns={self.nns}, sns={self.sns}, "
            f"system={self.system}, verified_application={self.verified_application}, "
            f"state_dir={self.state_dir!r}, from_state={self.from_state!r})"
        )

    def add_subnet_with_state(self, subnet_type: SubnetKind, state_dir_path: str | Path) -> None:
        """Load a subnet of kind ``subnet_type`` from a previous instance's subnet directory."""
        self.from_state.append((SubnetKind(subnet_type), Path(state_dir_path)))

    def kinds(self) -> list[SubnetKind]:
        """Return the new subnets' kinds in creation order (NNS, then application ...)."""
        return (
            [SubnetKind.NNS] * bool(self.nns)
            + [SubnetKind.APPLICATION] * self.application
            + [SubnetKind.VERIFIED_APPLICATION] * self.verified_application
            + [SubnetKind.FIDUCIARY] * bool(self.fiduciary)
            + [SubnetKind.II] * bool(self.ii)
            + [SubnetKind.BITCOIN] * bool(self.bitcoin)
            + [SubnetKind.SNS] * bool(self.sns)
            + [SubnetKind.SYSTEM] * self.system
        )

    def validate(self) -> None:
        """Raise ``ValueError`` for negative counts or an empty configuration (as pocket-ic)."""
        if min(self.application, self.system, self.verified_application) < 0:
            raise ValueError("The number of application and system subnets must be non-negative.")
        state_dir = Path(self.state_dir) if self.state_dir is not None else None
        has_state = state_dir is not None and state_dir.is_dir() and any(state_dir.iterdir())
        if not (self.kinds() or self.from_state or has_state):
            raise ValueError(
                "At least one subnet or a non-empty state directory must be configured."
            )


def _reject_name(reject_code: int) -> str | int:
    try:
        return RejectCode(reject_code).variant()
    except ValueError:
        return reject_code


def error_code_name(error_code: str) -> str:
    """Return the IC's name of an ``IC<nnnn>`` error code (``IC0503`` -> ``CanisterCalledTrap``).

    Spec: dfinity/ic ``rs/types/error_types`` (``ErrorCode`` variants).
    """
    try:
        return ErrorCode(int(error_code.removeprefix("IC"))).variant()
    except (KeyError, ValueError):
        return error_code or "None"


class RejectError(ValueError):
    """A call the IC rejected: pocket-ic's ``ValueError`` with its message convention.

    The message reads ``PocketIC returned a rejection error: reject code CanisterError,
    reject message ..., error code CanisterCalledTrap (IC0503)``: pocket-ic's text with
    the IC's ``IC<nnnn>`` code appended.
    Spec: pocket-ic package ``PocketIC._get_ok``; interface spec §"Reject codes".
    """

    def __init__(self, reject_code: int, reject_message: str, error_code: str) -> None:
        self.reject_code = reject_code
        self.reject_message = reject_message
        self.error_code = error_code
        name = error_code_name(error_code)
        code = f"{name} ({error_code})" if error_code and name != error_code else name
        super().__init__(
            f"PocketIC returned a rejection error: reject code "
            f"{_reject_name(reject_code)}, reject message {reject_message}, "
            f"error code {code}"
        )


class ServerError(ConnectionError):
    """A request refused outright (pocket-ic: the server's 4xx ``ConnectionError``).

    Spec: pocket-ic package ``PocketICServer._check_status_code``.
    """

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        self.message = message
        super().__init__(f"PocketIC returned status code {status_code}: {message}")


class TimeIntoPastError(ServerError, ValueError):
    """``set_time`` before the current time: IC time is monotone.

    Both a ``ConnectionError`` (what pocket-ic raises for the server's refusal) and a
    ``ValueError``.  Spec: PocketIC server ``PocketIcError::SettingTimeIntoPast``.
    """

    def __init__(self, current: int, requested: int) -> None:
        self.current = current
        self.requested = requested
        super().__init__(400, f"SettingTimeIntoPast(current={current},set={requested})")


class PocketICServer:
    """The in-process stand-in for pocket-ic's server: the registry of this process's instances.

    pocket-ic shares one server per process; ``PocketIC`` instances share
    ``DEFAULT_SERVER`` unless given another one.  There is no server process.
    Spec: pocket-ic package ``pocket_ic/pocket_ic_server.py`` (``list_instances``).
    """

    def __init__(self) -> None:
        self._instances: list[str] = []

    def new_instance(self) -> int:
        """Register an instance; return its id."""
        self._instances.append("Available")
        return len(self._instances) - 1

    def delete_instance(self, instance_id: int) -> None:
        """Mark an instance deleted."""
        self._instances[instance_id] = "Deleted"

    def list_instances(self) -> list[str]:
        """Return every instance's state (``"Available"`` or ``"Deleted"``), by id."""
        return list(self._instances)


DEFAULT_SERVER: Final = PocketICServer()


class Topology(dict[Any, SubnetKind]):
    """Subnet id -> kind; callable (``pic.topology()``, pocket-ic >= 3) and a mapping (earlier).

    Spec: pocket-ic package ``PocketIC.topology`` (CHANGELOG 3.0.0: attribute -> method).
    """

    def __call__(self) -> Topology:
        return Topology(self)


@attrs.frozen
class _Layout:
    """An instance's subnets as ``topology.json`` records them.

    ``kinds`` are the subnets the instance was created with (the IC's genesis subnets,
    in order); ``added`` those created later for a canister id no subnet hosted (the
    IC rebuilds them from its registry, after the genesis ones).  ``topology.json``
    lists both, as ``subnet-<i>`` in IC order, the added ones marked ``"added"``.
    """

    seed: bytes
    nodes: int
    kinds: tuple[SubnetKind, ...]
    hidden: frozenset[int]
    """Indices of subnets the user did not configure (the NNS that always runs)."""
    added: tuple[SubnetKind, ...] = ()

    @property
    def all_kinds(self) -> tuple[SubnetKind, ...]:
        """Every subnet's kind, in the IC's order (``ic.subnets``)."""
        return self.kinds + self.added

    def to_json(self, subnet_ids: Sequence[Principal]) -> str:
        genesis = len(self.kinds)
        return json.dumps(
            {
                "subnet_configs": {
                    f"subnet-{i}": {
                        "subnet_config": {"subnet_kind": kind.value, "nodes": self.nodes},
                        "subnet_id": subnet_ids[i].to_text(),
                        "hidden": i in self.hidden,
                        "added": i >= genesis,
                    }
                    for i, kind in enumerate(self.all_kinds)
                },
                "seed": self.seed.hex(),
                "nodes": self.nodes,
            },
            indent=1,
        )

    @staticmethod
    def load(state_dir: Path) -> _Layout:
        path = state_dir / TOPOLOGY_FILE
        try:
            data = json.loads(path.read_text())
            configs = [
                data["subnet_configs"][f"subnet-{i}"] for i in range(len(data["subnet_configs"]))
            ]
            kinds = [SubnetKind(c["subnet_config"]["subnet_kind"]) for c in configs]
            added = [bool(c.get("added", False)) for c in configs]
            genesis = added.index(True) if True in added else len(kinds)
            if any(not a for a in added[genesis:]):
                raise ValueError("a genesis subnet is listed after an added one")
            hidden = frozenset(i for i, c in enumerate(configs) if c["hidden"])
            return _Layout(
                bytes.fromhex(data["seed"]),
                int(data["nodes"]),
                tuple(kinds[:genesis]),
                hidden,
                tuple(kinds[genesis:]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} does not describe a PocketIC instance: {exc}") from None


def _plan(
    config: SubnetConfig, state_dir: Path | None, seed: bytes, nodes: int
) -> tuple[_Layout, Path | None]:
    """Return the layout to build (or restore) and the IC's state directory."""
    if config.from_state:
        roots = {path.parent.resolve() for _, path in config.from_state}
        if len(roots) != 1 or config.kinds():
            raise ValueError(
                "subnets loaded with add_subnet_with_state must all come from one PocketIC "
                "state directory, without new subnets besides them"
            )
        root = roots.pop()
        if state_dir is not None and state_dir.resolve() != root:
            raise ValueError(f"state_dir {state_dir} differs from the subnets' directory {root}")
        layout = _Layout.load(root)
        visible: set[int] = set()
        every = layout.all_kinds
        for kind, path in config.from_state:
            number = path.name.removeprefix("subnet-")
            index = int(number) if path.name.startswith("subnet-") and number.isdigit() else -1
            if not 0 <= index < len(every) or every[index] is not kind:
                raise ValueError(f"{path} is not a {kind.value} subnet of the instance in {root}")
            visible.add(index)
        return attrs.evolve(layout, hidden=frozenset(range(len(every))) - visible), root
    if state_dir is not None and (state_dir / TOPOLOGY_FILE).exists():
        layout = _Layout.load(state_dir)
        shown = sorted(k.value for i, k in enumerate(layout.kinds) if i not in layout.hidden)
        wanted = sorted(k.value for k in config.kinds())
        if wanted and wanted != shown:
            raise ValueError(
                f"{state_dir} holds an instance with subnets {shown}, not {wanted}; "
                "pass SubnetConfig(state_dir=...) alone to restore it"
            )
        return layout, state_dir
    if state_dir is not None and state_dir.exists() and any(state_dir.iterdir()):
        raise ValueError(f"state_dir {state_dir} is neither empty nor a PocketIC state directory")
    kinds = config.kinds()
    hidden: frozenset[int] = frozenset()
    if SubnetKind.NNS not in kinds:
        kinds = [SubnetKind.NNS, *kinds]
        hidden = frozenset({0})
    return _Layout(seed, nodes, tuple(kinds), hidden), state_dir


def _with_unrecorded_subnets(layout: _Layout, subnets: Sequence[Subnet], hide: bool) -> _Layout:
    """Return ``layout`` with the IC's subnets it does not list yet appended to ``added``.

    A subnet added at run time is in the IC's registry before ``topology.json`` records
    its kind; if the instance stopped in between, its kind is read back from the IC
    (application or system).  ``hide``: hide them (an instance made of chosen subnets).
    """
    known = len(layout.all_kinds)
    if len(subnets) < known:
        raise ValueError(
            f"{TOPOLOGY_FILE} lists {known} subnets, but the IC's registry only {len(subnets)}"
        )
    extra = tuple(
        SubnetKind.SYSTEM if s.kind is ICSubnetKind.SYSTEM else SubnetKind.APPLICATION
        for s in subnets[known:]
    )
    if not extra:
        return layout
    hidden = layout.hidden | frozenset(range(known, len(subnets))) if hide else layout.hidden
    return attrs.evolve(layout, added=layout.added + extra, hidden=hidden)


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


def _icpy() -> Any:
    """Return the ``ic`` module of ic-py (raises ImportError when it is not installed)."""
    return importlib.import_module("ic")


def _has_icpy() -> bool:
    try:
        _icpy()
    except ImportError:
        return False
    return True


@functools.cache
def _icpy_principal_class(ic_principal: type) -> type:
    """Return a subclass of ``ic.Principal`` that compares and hashes by its bytes.

    ic-py's ``Principal`` compares by identity; this subclass is still an
    ``ic.Principal`` for every other purpose, and works as a dictionary key.
    """

    def __eq__(self: Any, other: object) -> bool:
        raw = getattr(other, "bytes", None)
        return isinstance(raw, bytes) and raw == self.bytes

    def __hash__(self: Any) -> int:
        return hash(self.bytes)

    return type("Principal", (ic_principal,), {"__eq__": __eq__, "__hash__": __hash__})


def _reply_data(data: bytes) -> bytes | list[int]:
    """Return a reply as pocket-ic does: Candid as bytes, anything else as a list of ints.

    Spec: pocket-ic package ``PocketIC._get_ok_data``.
    """
    return data if data.startswith(b"DIDL") else list(data)


def _settings(settings: Any) -> dict[str, Any] | None:
    """Return canister settings with opt fields as values or None.

    Accepts ic-py's convention (``{"controllers": [[p1, p2]], "freezing_threshold": []}``,
    an opt as a list of zero or one element) and ours (``{"controllers": [p1, p2]}``).
    """
    if not settings:
        return None
    out: dict[str, Any] = {}
    for key, value in dict(settings).items():
        if key == "controllers":
            if isinstance(value, list) and value and isinstance(value[0], list | tuple):
                value = value[0]
            elif value == []:
                value = None
            value = None if value is None else [_principal(c) for c in value]
        elif isinstance(value, list):
            if len(value) > 1:
                raise ValueError(f"setting {key}: an opt holds at most one value, got {value!r}")
            value = value[0] if value else None
        out[key] = value
    return out


MAINNET_SUBNETS: Final = 1024
"""How many subnets PocketIC assumes mainnet has: ids of ``2**20``-blocks beyond are not
mainnet ids (PocketIC server ``MAXIMUM_NUMBER_OF_SUBNETS_ON_MAINNET``)."""

_MAINNET_BLOCK_KINDS: Final[Mapping[int, SubnetKind]] = {
    0: SubnetKind.NNS,
    26: SubnetKind.BITCOIN,
    32: SubnetKind.SNS,
    33: SubnetKind.II,
    35: SubnetKind.FIDUCIARY,
}
"""The ``2**20``-blocks of canister indices that mainnet's special subnets hold, by kind
(PocketIC server ``subnet_kind_canister_range``; the II subnet also holds
``rdmx6-jaaaa-aaaaa-aaadq-cai`` in block 0, the NNS's)."""


def mainnet_subnet_kind(canister_id: Principal) -> SubnetKind:
    """Return the kind of the mainnet subnet whose range holds ``canister_id``.

    Raises ``ServerError`` (400, the PocketIC server's messages) if the id is not a
    mainnet canister id or belongs to the NNS or II subnet, which PocketIC does not
    create on demand.
    Spec: PocketIC server ``rs/pocket_ic_server/src/pocket_ic.rs`` (``route``,
    ``subnet_kind_from_canister_id``).
    """
    index = canister_id.canister_index()
    if len(canister_id.raw) != 10:
        raise ServerError(
            400,
            f"The binary representation {canister_id.raw.hex()} of effective canister ID "
            f"{canister_id} should consist of 10 bytes.",
        )
    if index is None or index >> 20 >= MAINNET_SUBNETS:
        raise ServerError(
            400,
            f"The effective canister ID {canister_id} does not belong to an existing "
            "subnet and it is not a mainnet canister ID.",
        )
    kind = _MAINNET_BLOCK_KINDS.get(index >> 20, SubnetKind.APPLICATION)
    if kind in (SubnetKind.NNS, SubnetKind.II):
        raise ServerError(
            400,
            f"The effective canister ID {canister_id} belongs to the NNS or II subnet on "
            "the IC mainnet for which PocketIC provides a `SubnetKind`: please set up your "
            "PocketIC instance with a subnet of that `SubnetKind`.",
        )
    return kind


def free_block_range(canister_id: Principal, taken: Sequence[RoutingTableEntry]) -> CanisterIdRange:
    """Return the largest free range around ``canister_id`` in its block of ``2**20`` ids.

    Free: no range in ``taken`` touches it (the whole block unless some range lies in
    it).  ``canister_id`` must be a canister id (``u64 || 0x01 0x01``) that no range
    in ``taken`` holds.  Spec: protocol digest §4.4 (2**20 ids per subnet).
    """
    index = canister_id.canister_index()
    if index is None:
        raise ValueError(f"{canister_id} is not a canister id")
    low = index & ~(CANISTER_IDS_PER_SUBNET - 1)
    high = low + CANISTER_IDS_PER_SUBNET - 1
    for entry in taken:
        first, last = entry.start.canister_index(), entry.end.canister_index()
        if first is None or last is None:
            continue  # no such ranges here; add_subnet refuses an overlap anyway
        if first <= index <= last:
            raise ValueError(f"{canister_id} is in a subnet's range already")
        if last < index:
            low = max(low, last + 1)
        elif first > index:
            high = min(high, first - 1)
    return CanisterIdRange.from_indices(low, high)


class PocketIC:
    """A drop-in for ``pocket_ic.PocketIC``, running an in-process IC (no server).

    Theory of operation.  The instance is an ``InternetComputer`` with one node per
    subnet (``nodes=`` for more) in PocketIC's trusted test mode (any sender without
    a signature).  An NNS subnet always runs, since its key is the root key that
    certifies everything; when the configuration has no NNS it is *hidden*: absent
    from ``topology()``, ``get_root_key()`` is None and its canister ids belong to no
    subnet, as in pocket-ic.  Time: ``set_time``/``advance_time`` pin the time that
    ``get_time`` returns; the IC runs up to it before the next call or ``tick``.

    With ic-py installed (``icpy=None`` detects it), principals are returned as
    ``ic.Principal`` (comparing by bytes), ``install_code`` takes ic-py's typed
    argument lists and ``create_and_install_canister_with_candid`` returns an
    ``ic.Canister``; otherwise ``icp.Principal`` and Candid bytes.  Replies are bytes
    when Candid, else lists of ints; rejects raise ``RejectError`` (a ``ValueError``),
    requests refused outright ``ServerError`` (a ``ConnectionError``), as pocket-ic.

    Creating a canister with an id in the hidden NNS's range makes the NNS visible, as
    pocket-ic creates the NNS subnet for such an id.  Creating one with an id no subnet
    hosts first creates a subnet for it, as the PocketIC server does: a subnet of the
    kind mainnet's subnet holding that id has (Application unless it is a Bitcoin,
    Fiduciary or SNS id; NNS and II ids, and ids that are not mainnet canister ids,
    are refused with the server's messages), holding the id's block of ``2**20`` ids.
    It is a real subnet added to the running IC (``InternetComputer.add_subnet``: a new
    registry version every subnet takes up), listed by ``topology()``, and it comes
    back when the instance is restored from its state directory.

    Differences from ``pocket-ic``: subnets keep our canister ranges (NNS: ids
    0..2**20-1, others 2**20 ids from the dfx range), not mainnet's, so an id in a
    mainnet Bitcoin, Fiduciary or SNS range gets a new subnet of that kind even when
    the instance was configured with one (an II id is refused); a subnet created for an
    id has no second, automatic-allocation range (pocket-ic adds one from the top of
    the id space), so canisters created there without an id take ids from its block.
    Spec: pocket-ic package ``pocket_ic/pocket_ic.py``; the Rust ``pocket-ic`` crate
    (upgrade/reinstall/uninstall, start/stop/delete, canister_status, ingress status).
    """

    def __init__(
        self,
        subnet_config: SubnetConfig | None = None,
        *,
        nodes: int = 1,
        seed: bytes | int = 0,
        state_dir: str | Path | None = None,
        time: int | None = None,
        icpy: bool | None = None,
        server: PocketICServer | None = None,
    ) -> None:
        """Create an instance (default: one application subnet)."""
        config = subnet_config if subnet_config is not None else SubnetConfig(application=1)
        if (
            state_dir is not None
            and config.state_dir is not None
            and Path(state_dir).resolve() != Path(config.state_dir).resolve()
        ):
            raise ValueError("state_dir given twice, with different directories")
        chosen = state_dir if state_dir is not None else config.state_dir
        config.validate()
        seed_bytes = seed.to_bytes(32, "big") if isinstance(seed, int) else bytes(seed)
        layout, ic_dir = _plan(
            config, Path(chosen) if chosen is not None else None, seed_bytes, nodes
        )
        kwargs: dict[str, Any] = {} if time is None else {"time": time}
        self.ic = InternetComputer(
            [SubnetSpec(_IC_KIND[kind], layout.nodes) for kind in layout.kinds],
            seed=layout.seed,
            state_dir=ic_dir,
            authenticate_senders=False,
            **kwargs,
        )
        self._layout_file = (
            ic_dir / TOPOLOGY_FILE if ic_dir is not None and not config.from_state else None
        )
        self._layout = _with_unrecorded_subnets(layout, self.ic.subnets, bool(config.from_state))
        if self._layout_file is not None and (
            not self._layout_file.exists() or self._layout != layout
        ):
            self._save_layout()
        layout = self._layout
        self.icpy = _has_icpy() if icpy is None else icpy
        self._kinds: dict[bytes, SubnetKind] = {
            subnet.subnet_id.raw: kind
            for i, (subnet, kind) in enumerate(zip(self.ic.subnets, layout.all_kinds, strict=True))
            if i not in layout.hidden
        }
        self.topology = Topology(
            (self._out(Principal(raw)), kind) for raw, kind in self._kinds.items()
        )
        visible = [s for s in self.ic.subnets if s.subnet_id.raw in self._kinds]
        self._default_subnet = next(
            (s for s in visible if self._kinds[s.subnet_id.raw] is SubnetKind.APPLICATION),
            next((s for s in visible if s.kind is not ICSubnetKind.NNS), visible[0]),
        )
        self.sender: Any = self._out(Principal.anonymous())
        self._submitted: dict[bytes, Principal] = {}
        self._pinned_time: int | None = None
        self._nonce = 0
        self.server = server if server is not None else DEFAULT_SERVER
        self.instance_id = self.server.new_instance()
        self._closed = False
        self.ic.tick()

    def _save_layout(self) -> None:
        """Write ``topology.json`` atomically (the subnets a restart rebuilds)."""
        if self._layout_file is None:
            return
        self._layout_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._layout_file.with_name(f"{TOPOLOGY_FILE}.tmp")
        tmp.write_text(self._layout.to_json([s.subnet_id for s in self.ic.subnets]))
        tmp.replace(self._layout_file)

    def _host(self, canister_id: Principal) -> None:
        """Make sure a visible subnet hosts ``canister_id`` before it is created there.

        An id in the hidden NNS's range makes the NNS visible (pocket-ic creates the
        NNS subnet for it; here it runs anyway).  An id no subnet hosts gets a new
        subnet, as the PocketIC server's ``route`` does for
        ``provisional_create_canister_with_cycles``: the id must be a mainnet canister
        id (10 bytes, ``u64 || 0x01 0x01`` here, below ``1024 * 2**20``); the new
        subnet's kind is that of the mainnet subnet whose range holds the id (Bitcoin,
        Fiduciary, SNS; NNS and II ids are refused; any other id: Application) and its
        range is the id's block of ``2**20`` ids (the part of it no subnet holds).
        ``ServerError`` (400) otherwise, with the server's message.
        Spec: PocketIC server ``rs/pocket_ic_server/src/pocket_ic.rs`` (``route``);
        protocol digest §4.4 (routing table), §6.2 step 4 (``CreateSubnet``).
        """
        try:
            subnet = self.ic.subnet_of(canister_id)
        except ICError:
            self._add_subnet_for(canister_id)
            return
        if subnet.kind is not ICSubnetKind.NNS or subnet.subnet_id.raw in self._kinds:
            return
        self._kinds[subnet.subnet_id.raw] = SubnetKind.NNS
        self.topology[self._out(subnet.subnet_id)] = SubnetKind.NNS
        index = self.ic.subnets.index(subnet)
        self._layout = attrs.evolve(self._layout, hidden=self._layout.hidden - {index})
        self._save_layout()

    def _add_subnet_for(self, canister_id: Principal) -> Subnet:
        """Create a subnet hosting ``canister_id`` (see ``_host``); return it."""
        kind = mainnet_subnet_kind(canister_id)
        taken = self.ic.registry.routing_table().entries
        ranges = [free_block_range(canister_id, taken)]
        self._sync()
        try:
            subnet = self.ic.add_subnet(
                SubnetSpec(_IC_KIND[kind], self._layout.nodes), ranges=ranges
            )
        except (ICError, RegistryError) as exc:
            status = exc.http_status if isinstance(exc, ICError) else 400
            raise ServerError(
                status, f"no subnet could be created for {canister_id}: {exc}"
            ) from None
        self._layout = attrs.evolve(self._layout, added=(*self._layout.added, kind))
        self._save_layout()
        self._kinds[subnet.subnet_id.raw] = kind
        self.topology[self._out(subnet.subnet_id)] = kind
        return subnet

    def close(self) -> None:
        """Release the instance (its state stays in its state directory, if any)."""
        if not getattr(self, "_closed", True):
            self._closed = True
            if self.ic.state_dir is not None:
                self._sync()  # a time set last is part of the state kept on disk
            self.ic.close()
            self.server.delete_instance(self.instance_id)

    def __del__(self) -> None:
        """Release the instance at once (``del pic``)."""
        self.close()

    def __enter__(self) -> PocketIC:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _out(self, principal: Principal) -> Any:
        """Return a principal as this instance hands them out (``ic.Principal`` with ic-py)."""
        if self.icpy:
            return _icpy_principal_class(_icpy().Principal)(principal.raw)
        return principal

    # -- identity -------------------------------------------------------------------------

    def set_anonymous_sender(self) -> None:
        """Send the following calls as the anonymous principal."""
        self.sender = self._out(Principal.anonymous())

    def set_sender(self, principal: Any) -> None:
        """Send the following calls as ``principal`` (a principal or an identity).

        A bare principal needs no key: like the pocket-ic server, this instance does
        not check senders' signatures; an ``icp`` identity signs its requests anyway,
        an ic-py ``Identity`` sends as its principal.
        """
        self.sender = principal

    def _identity(self) -> tuple[Principal, Identity | None]:
        s = self.sender
        if callable(getattr(s, "public_key_der", None)) and callable(getattr(s, "sign", None)):
            return principal_of(s), s
        if callable(getattr(s, "sender", None)):  # an ic-py Identity
            return _principal(s.sender()), None
        return _principal(s), None

    # -- time and topology ---------------------------------------------------------------

    def get_root_key(self) -> bytes | None:
        """Return the IC root key (DER); None when the configuration has no NNS subnet."""
        if SubnetKind.NNS not in self._kinds.values():
            return None
        return self.ic.root_key

    def get_time(self) -> dict[str, int]:
        """Return ``{'nanos_since_epoch': t}``: the time last set, else the IC's time."""
        now = self._pinned_time if self._pinned_time is not None else self.ic.time()
        return {"nanos_since_epoch": now}

    def set_time(self, time_nanosec: int) -> None:
        """Set the IC's time; the IC runs up to it before the next call or tick.

        Raises ``TimeIntoPastError`` (a ``ConnectionError`` and a ``ValueError``) for a
        time before the current one: IC time is monotone.
        """
        now = self.get_time()["nanos_since_epoch"]
        if time_nanosec < now:
            raise TimeIntoPastError(now, time_nanosec)
        self._pinned_time = time_nanosec

    def advance_time(self, nanosecs: int) -> None:
        """Move the IC's time forward by ``nanosecs``."""
        self.set_time(self.get_time()["nanos_since_epoch"] + nanosecs)

    def _sync(self) -> None:
        """Run the IC up to a pinned time, so that the next message sees it."""
        if self._pinned_time is not None:
            pinned, self._pinned_time = self._pinned_time, None
            if pinned > self.ic.time():
                self.ic.set_time(pinned)

    def tick(self) -> None:
        """Let every subnet finalize, execute and certify one more height."""
        self._sync()
        self.ic.tick()

    def _route(self, canister_id: Principal) -> Subnet:
        """Return the visible subnet whose ranges hold ``canister_id`` (else ``ServerError``)."""
        try:
            subnet = self.ic.subnet_of(canister_id)
        except ICError:
            subnet = None
        if subnet is None or subnet.subnet_id.raw not in self._kinds:
            raise ServerError(400, f"Canister {canister_id} does not belong to any subnet.")
        return subnet

    def get_subnet(self, canister_id: Any) -> Any:
        """Return the id of the subnet hosting ``canister_id`` (None if it does not exist)."""
        cid = _principal(canister_id)
        try:
            subnet = self._route(cid)
        except ServerError:
            return None
        state, _ = subnet.serving_replica().certified()
        return self._out(subnet.subnet_id) if state.canister(cid) is not None else None

    def check_canister_exists(self, canister_id: Any) -> bool:
        """Return whether the canister exists."""
        return self.get_subnet(canister_id) is not None

    def _canister(self, canister_id: Any) -> CanisterState:
        cid = _principal(canister_id)
        self._sync()
        state, _ = self._route(cid).serving_replica().certified()
        canister = state.canister(cid)
        if canister is None:
            raise ServerError(400, f"CanisterNotFound({cid})")
        return canister

    def get_cycles_balance(self, canister_id: Any) -> int:
        """Return the canister's cycles balance (certified state)."""
        return int(self._canister(canister_id).cycles)

    def get_stable_memory(self, canister_id: Any) -> bytes:
        """Return the canister's stable memory in its latest certified state."""
        cid = _principal(canister_id)
        self._sync()
        self._route(cid)
        try:
            return self.ic.get_stable_memory(cid)
        except ICError as exc:
            raise ServerError(400, f"CanisterNotFound({cid}): {exc.message}") from None

    def set_stable_memory(
        self, canister_id: Any, data: bytes, compression: str | None = None
    ) -> None:
        """Replace the canister's stable memory with ``data`` (``compression="gzip"``: gzipped).

        A replicated state change: every replica of the subnet applies it at the same
        height, which is certified before this returns (``InternetComputer.set_stable_memory``).
        The memory becomes whole 64 KiB pages: ``data``, then zeros.
        Spec: pocket-ic package ``PocketIC.set_stable_memory``.
        """
        if compression == "gzip":
            data = gzip.decompress(data)
        elif compression is not None:
            raise ValueError('only "gzip" compression is supported')
        cid = _principal(canister_id)
        self._sync()
        self._route(cid)
        try:
            self.ic.set_stable_memory(cid, bytes(data))
        except ICError as exc:
            name = "CanisterIsEmpty" if exc.error_code == "IC0537" else "CanisterNotFound"
            raise ServerError(exc.http_status, f"{name}({cid}): {exc.message}") from None

    # -- calls ----------------------------------------------------------------------------

    def _submit(
        self, canister_id: Principal, method: str, payload: bytes, ecid: Principal
    ) -> bytes:
        sender, identity = self._identity()
        self._nonce += 1
        nonce = hashlib.sha256(self.ic.seed + self.ic.time().to_bytes(16, "big")).digest()[:8]
        content = call_content(
            "call", sender, canister_id, method, bytes(payload), self.ic.time() + DEFAULT_TTL,
            nonce=nonce + self._nonce.to_bytes(8, "big"),
        )  # fmt: skip
        try:
            return self.ic.submit_call(envelope(content, identity), ecid)
        except ICError as exc:
            raise _ic_error(exc) from None

    def _update(
        self, canister_id: Any, effective_principal: Any, method: str, payload: bytes
    ) -> bytes:
        """Make an update call; return the reply bytes (``RejectError`` if rejected)."""
        self._sync()
        cid = (
            _principal(canister_id) if canister_id is not None else Principal.management_canister()
        )
        ecid = self._effective(cid, effective_principal, method, payload)
        self._route(ecid)
        return self._reply_of(self._submit(cid, method, payload, ecid), ecid)

    def update_call_with_effective_principal(
        self, canister_id: Any, effective_principal: Any, method: str, payload: bytes
    ) -> bytes | list[int]:
        """Make an update call; ``effective_principal``: ``{"CanisterId"|"SubnetId": ...}``.

        Returns the reply (bytes if Candid, else a list of ints, as pocket-ic); raises
        ``RejectError`` (a ``ValueError``) with the IC's reject and error codes.
        """
        return _reply_data(self._update(canister_id, effective_principal, method, payload))

    def _reply_of(self, request_id: bytes, ecid: Principal) -> bytes:
        """Run until ``request_id`` is answered; return the reply or raise ``RejectError``."""
        try:
            result = self.ic.wait_for(request_id, ecid)
        except ICError as exc:
            if exc.http_status == 408:
                raise ValueError(f"PocketIC did not complete the update call: {exc}") from None
            raise _ic_error(exc) from None
        if result.status != "replied" or result.reply is None:
            raise RejectError(
                result.reject_code or 0, result.reject_message or "", result.error_code or ""
            )
        return result.reply

    def _effective(self, cid: Principal, effective: Any, method: str, payload: bytes) -> Principal:
        if isinstance(effective, Mapping):
            if "CanisterId" in effective:
                return _principal(_b64(effective["CanisterId"]))
            if "SubnetId" in effective:
                subnet_id = _principal(_b64(effective["SubnetId"]))
                if subnet_id.raw not in self._kinds:
                    raise ServerError(400, f"Subnet {subnet_id} not found")
                return self.ic.subnet(subnet_id).ranges[0].start
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
        self._sync()
        cid = (
            _principal(canister_id) if canister_id is not None else Principal.management_canister()
        )
        ecid = self._effective(cid, None, method, payload)
        self._route(ecid)
        rid = self._submit(cid, method, payload, ecid)
        self._submitted[rid] = ecid
        return rid

    def ingress_status(self, request_id: bytes) -> str | None:
        """Return the certified status of a submitted call (None: unknown yet)."""
        ecid = self._submitted.get(request_id)
        if ecid is None:
            return None
        status = self.ic.request_status(request_id, ecid)
        return None if status is None else status.status.value

    def await_call(self, request_id: bytes) -> bytes | list[int]:
        """Run until a submitted call is answered; return its reply (or raise ``RejectError``)."""
        ecid = self._submitted.get(request_id)
        if ecid is None:
            raise ValueError(f"request 0x{request_id.hex()} was not submitted here")
        return _reply_data(self._reply_of(request_id, ecid))

    def update_call(self, canister_id: Any, method: str, payload: bytes) -> bytes | list[int]:
        """Make an update call (``None``: the management canister); return the reply."""
        return self.update_call_with_effective_principal(canister_id, None, method, payload)

    def query_call(self, canister_id: Any, method: str, payload: bytes) -> bytes | list[int]:
        """Make a query call on one replica; return the reply (``RejectError`` if rejected)."""
        self._sync()
        cid = (
            _principal(canister_id) if canister_id is not None else Principal.management_canister()
        )
        sender, _ = self._identity()
        subnet = self._route(cid if not cid.is_management_canister else self._effective(
            cid, None, method, bytes(payload)
        ))  # fmt: skip
        response = self.ic.run_query(subnet.serving_replica(), sender, cid, method, bytes(payload))
        if isinstance(response, Reject):
            raise RejectError(response.code, response.message, response.error_code)
        return _reply_data(bytes(response.data))

    # -- canisters ------------------------------------------------------------------------

    def create_canister(
        self, settings: Any = None, subnet: Any = None, canister_id: Any = None
    ) -> Any:
        """Create an empty canister (on ``subnet``, or with ``canister_id``); return its id.

        ``settings``: a settings record (ic-py's opt convention or plain values).
        """
        arg = encode(
            [ProvisionalCreateArgs],
            [
                {
                    "amount": None,
                    "settings": _settings(settings),
                    "specified_id": None if canister_id is None else _principal(canister_id),
                    "sender_canister_version": None,
                }
            ],
        )
        if canister_id is not None:
            self._host(_principal(canister_id))
            effective: Any = {"CanisterId": _principal(canister_id)}
        elif subnet is not None:
            effective = {"SubnetId": _principal(subnet)}
        else:
            effective = None
        reply = self._update(None, effective, "provisional_create_canister_with_cycles", arg)
        return self._out(_principal(decode(reply, [CanisterIdRecord])[0]["canister_id"]))

    def _arg_bytes(self, arg: Any) -> bytes:
        """Return install arguments as Candid bytes (ic-py typed list, bytes or None)."""
        if arg is None:
            return encode([], [])
        if isinstance(arg, bytes | bytearray):
            return bytes(arg)
        if isinstance(arg, list):
            if self.icpy:
                return bytes(_icpy().encode(arg))
            if not arg:
                return encode([], [])
            raise TypeError("typed argument lists need ic-py; pass Candid bytes instead")
        raise TypeError(f"install arguments must be Candid bytes or an ic-py list, not {arg!r}")

    def _install(self, canister_id: Any, wasm_module: bytes, arg: Any, mode: Any) -> None:
        cid = _principal(canister_id)
        payload = encode(
            [InstallCodeArgs],
            [
                {
                    "mode": mode,
                    "canister_id": cid,
                    "wasm_module": bytes(wasm_module),
                    "arg": self._arg_bytes(arg),
                    "sender_canister_version": None,
                }
            ],
        )
        self._update(None, {"CanisterId": cid}, "install_code", payload)

    def install_code(self, canister_id: Any, wasm_module: bytes, arg: Any) -> None:
        """Install ``wasm_module`` (raw or gzip-compressed) with init ``arg``.

        ``arg``: ic-py's typed argument list (``[]`` for none), or Candid bytes.
        """
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
        return self._update(None, {"CanisterId": cid}, method, arg)

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
        reply = self._management("canister_status", canister_id)
        return dict(decode(reply, [CanisterStatusResult])[0])

    def update_canister_settings(self, canister_id: Any, settings: Any) -> None:
        """Change the canister's settings (``update_settings``, as a controller).

        ``settings``: ic-py's opt convention or plain values, as in ``create_canister``.
        """
        cid = _principal(canister_id)
        arg = encode(
            [UpdateSettingsArgs],
            [{"canister_id": cid, "settings": _settings(settings) or {}}],
        )
        self._update(None, {"CanisterId": cid}, "update_settings", arg)

    def set_controllers(self, canister_id: Any, new_controllers: Sequence[Any]) -> None:
        """Replace the canister's controllers (as one of its controllers)."""
        controllers = [_principal(c) for c in new_controllers]
        self.update_canister_settings(canister_id, {"controllers": [controllers]})

    def get_controllers(self, canister_id: Any) -> list[Any]:
        """Return the canister's controllers (read from the certified state, by anyone)."""
        settings = self._canister(canister_id).settings
        return [self._out(Principal(raw)) for raw in settings.controllers]

    def add_cycles(self, canister_id: Any, amount: int) -> int:
        """Top up the canister by ``amount`` cycles; return its new balance."""
        cid = _principal(canister_id)
        arg = encode([TopUpArgs], [{"canister_id": cid, "amount": amount}])
        self._update(None, {"CanisterId": cid}, "provisional_top_up_canister", arg)
        return self.get_cycles_balance(cid)

    def create_and_install_canister_with_candid(
        self, candid: str, wasm_module: bytes, init_args: Any = None, subnet: Any = None
    ) -> Any:
        """Create a canister, give it 2T cycles, install the module; return an ``ic.Canister``.

        ``init_args``: the value of the service's single init argument (ic-py).  Without
        ic-py, ``init_args`` must be Candid bytes (or None) and the canister id is returned.
        """
        canister_id = self.create_canister(subnet=subnet)
        if not self.icpy:
            self.add_cycles(canister_id, 2_000_000_000_000)
            self.install_code(canister_id, wasm_module, init_args)
            return canister_id
        ic = _icpy()
        canister = ic.Canister(self, canister_id, candid)
        arguments = canister.actor["arguments"]
        if len(arguments) > 1:
            raise ValueError("The candid file appears to be malformed")
        arg = [{"type": arguments[0], "value": init_args}] if arguments else []
        self.add_cycles(canister_id, 2_000_000_000_000)
        self.install_code(canister_id, wasm_module, arg)
        return canister

    # -- ic-py Agent compatibility -------------------------------------------------------

    def query_raw(
        self,
        canister_id: Any,
        name: str,
        arguments: bytes,
        return_types: Any,
        _effective_canister_id: Any = None,
    ) -> Any:
        """``ic.Agent.query_raw`` (used by ``ic.Canister``)."""
        return _icpy().decode(bytes(self.query_call(canister_id, name, arguments)), return_types)

    def update_raw(
        self,
        canister_id: Any,
        name: str,
        arguments: bytes,
        return_types: Any,
        _effective_canister_id: Any = None,
    ) -> Any:
        """``ic.Agent.update_raw`` (used by ``ic.Canister``)."""
        return _icpy().decode(bytes(self.update_call(canister_id, name, arguments)), return_types)


def _ic_error(exc: ICError) -> Exception:
    """Return pocket-ic's exception for a request the IC refused."""
    if exc.reject_code:
        return RejectError(exc.reject_code, exc.message, exc.error_code)
    return ServerError(exc.http_status, f"{exc.error_code}: {exc.message}".strip(": "))


def _b64(value: Any) -> bytes:
    if isinstance(value, str):
        return base64.b64decode(value)
    return bytes(_principal(value).raw)


def is_gzip(wasm: bytes) -> bool:
    """Return whether a module is gzip-compressed (the IC accepts both)."""
    return wasm[:2] == b"\x1f\x8b"


def gunzip(wasm: bytes) -> bytes:
    """Return the decompressed module (or ``wasm`` unchanged)."""
    return gzip.decompress(wasm) if is_gzip(wasm) else wasm


__all__ = [
    "DEFAULT_SERVER",
    "PocketIC",
    "PocketICServer",
    "RejectError",
    "ServerError",
    "SubnetConfig",
    "SubnetKind",
    "SubnetKindPIC",
    "TimeIntoPastError",
    "Topology",
    "call_content",
    "envelope",
    "error_code_name",
    "read_state_content",
]
