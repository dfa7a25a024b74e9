"""icp: an embeddable Python implementation of the Internet Computer.

The curated public surface lives here; internals are in the subpackages
(``icp.consensus``, ``icp.crypto``, ``icp.execution``, ``icp.messaging``,
``icp.state``, ``icp.nns``, ``icp.ledger``, ``icp.sim``, ``icp.http``,
``icp.candid``).  See ``DESIGN.md`` for the layering.
"""

from typing import TYPE_CHECKING, Any

from icp import candid
from icp.principal import Principal

if TYPE_CHECKING:
    from icp.ic import InternetComputer
    from icp.replica import Replica

__all__ = ["InternetComputer", "Principal", "Replica", "candid"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import ``InternetComputer`` and ``Replica`` on first use (they pull in Wasm engines)."""
    if name == "InternetComputer":
        from icp.ic import InternetComputer

        return InternetComputer
    if name == "Replica":
        from icp.replica import Replica

        return Replica
    raise AttributeError(f"module 'icp' has no attribute {name!r}")
