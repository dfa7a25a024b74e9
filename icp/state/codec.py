"""A canonical CBOR codec for state values (checkpoints and XNet stream messages).

Theory of operation.  State values are frozen ``attrs`` classes, enums, principals,
persistent maps, tuples, dicts, bytes, text and integers.  ``encode`` turns them into
canonical CBOR (map keys sorted, shortest integers — RFC 8949 §4.2.1), so equal
states encode to equal bytes on every replica; ``decode`` rebuilds them, but only
for the classes registered in a ``Codec`` (an allow-list: bytes on disk or from
another subnet never name arbitrary Python classes).  Class instances are maps
``{"$": name, field: value, ...}`` keyed by field name, so a class that gains a
field with a default still decodes older data.  Fields with ``init=False`` or
``eq=False`` are derived caches and are not stored.

Spec: RFC 8949 §4.2.1 (deterministic CBOR); the IC encodes its canonical state
leaves and checkpoints deterministically as well (protocol digest §4.7).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs
import cbor2

from icp.state.pmap import PMap

MAX_DEPTH: Final = 64


class CodecError(ValueError):
    """Raised for a value the codec cannot encode or bytes it cannot decode."""


class Codec:
    """Encode/decode state values, constructing only the registered classes."""

    def __init__(self, classes: Iterable[type]) -> None:
        self._classes: dict[str, type] = {}
        for cls in classes:
            self._classes[self._name(cls)] = cls

    @staticmethod
    def _name(cls: type) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    # ------------------------------------------------------------ encoding

    def to_value(self, value: object, depth: int = 0) -> object:
        """Return the CBOR data model of ``value``."""
        if depth > MAX_DEPTH:
            raise CodecError("value nested too deeply")
        if value is None or isinstance(value, bool | str | bytes):
            return value
        if isinstance(value, enum.Enum):
            name = self._name(type(value))
            if name not in self._classes:
                raise CodecError(f"enum {name} is not registered with the codec")
            return {"$e": name, "v": value.value}
        if isinstance(value, int):
            return value
        if isinstance(value, PMap):
            return {"$m": [[k, self.to_value(v, depth + 1)] for k, v in value.items()]}
        if attrs.has(type(value)):
            name = self._name(type(value))
            if name not in self._classes:
                raise CodecError(f"class {name} is not registered with the codec")
            out: dict[str, object] = {"$": name}
            for field in attrs.fields(type(value)):  # type: ignore[arg-type]
                if field.init and field.eq:
                    out[field.alias or field.name] = self.to_value(
                        getattr(value, field.name), depth + 1
                    )
            return out
        if isinstance(value, tuple | list):
            return [self.to_value(v, depth + 1) for v in value]
        if isinstance(value, Mapping):
            if any(isinstance(k, str) and k.startswith("$") for k in value):
                raise CodecError("map keys starting with '$' are reserved")
            return {
                "$d": [[self.to_value(k), self.to_value(v, depth + 1)] for k, v in value.items()]
            }
        raise CodecError(f"cannot encode a {type(value).__name__} in the state")

    def encode(self, value: object) -> bytes:
        """Return the canonical CBOR encoding of ``value``."""
        return bytes(cbor2.dumps(self.to_value(value), canonical=True))

    # ------------------------------------------------------------ decoding

    def from_value(self, data: object, depth: int = 0) -> Any:
        """Rebuild a value from its CBOR data model; raise ``CodecError`` if malformed."""
        if depth > MAX_DEPTH:
            raise CodecError("value nested too deeply")
        if data is None or isinstance(data, bool | int | str | bytes):
            return data
        if isinstance(data, list):
            return tuple(self.from_value(v, depth + 1) for v in data)
        if not isinstance(data, dict):
            raise CodecError(f"unexpected CBOR item {type(data).__name__}")
        try:
            if "$e" in data:
                cls = self._lookup(data["$e"])
                return cls(data["v"])
            if "$m" in data:
                return PMap((bytes(k), self.from_value(v, depth + 1)) for k, v in data["$m"])
            if "$d" in data:
                return {
                    self.from_value(k, depth + 1): self.from_value(v, depth + 1)
                    for k, v in data["$d"]
                }
            if "$" in data:
                cls = self._lookup(data["$"])
                kwargs = {k: self.from_value(v, depth + 1) for k, v in data.items() if k != "$"}
                return cls(**kwargs)
        except CodecError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise CodecError(f"malformed state value: {exc}") from None
        raise CodecError("a CBOR map in the state must be tagged with '$', '$e', '$m' or '$d'")

    def _lookup(self, name: object) -> type:
        cls = self._classes.get(name) if isinstance(name, str) else None
        if cls is None:
            raise CodecError(f"class {name!r} is not registered with the codec")
        return cls

    def decode(self, data: bytes) -> Any:
        """Decode bytes produced by ``encode``."""
        try:
            value = cbor2.loads(data)
        except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError) as exc:
            raise CodecError(f"malformed CBOR: {exc}") from None
        return self.from_value(value)


def state_codec(extra: Iterable[type] = ()) -> Codec:
    """Return a codec for the replicated state's classes (plus ``extra`` ones)."""
    from icp.execution import canister as ec
    from icp.execution import executor as ex
    from icp.execution import system_api as sa
    from icp.messaging import queues, routing, xnet
    from icp.principal import Principal
    from icp.state import ingress_history as ih
    from icp.state import replicated_state as rs

    classes: list[type] = [
        ec.CanisterStatus,
        ec.CanisterSettings,
        ec.IngressOrigin,
        ec.CanisterOrigin,
        ec.SystemOrigin,
        ec.CallContext,
        ec.Callback,
        ec.CanisterState,
        ex.IngressMessage,
        ex.CanisterRequest,
        ex.CanisterResponse,
        ex.IngressResult,
        sa.Reply,
        sa.Reject,
        routing.CanisterIdRange,
        routing.RoutingTable,
        xnet.StreamHeader,
        xnet.Stream,
        queues.CanisterQueues,
        queues.MessagingState,
        Principal,
        ih.RequestStatus,
        ih.IngressStatus,
        ih.IngressHistory,
        rs.SubnetTopology,
        rs.NetworkTopology,
        rs.SubnetMetrics,
        rs.ReplicatedState,
        *extra,
    ]
    return Codec(classes)
