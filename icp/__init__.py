"""icp: an embeddable Python implementation of the Internet Computer.

The curated public surface lives here; internals are in the subpackages
(``icp.consensus``, ``icp.crypto``, ``icp.execution``, ``icp.messaging``,
``icp.state``, ``icp.nns``, ``icp.ledger``, ``icp.sim``, ``icp.http``,
``icp.candid``).  See ``DESIGN.md`` for the layering.
"""

from icp import candid
from icp.principal import Principal

__all__ = ["Principal", "candid"]
__version__ = "0.1.0"
