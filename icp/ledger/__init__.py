"""icp.ledger: the ICP ledger and its account types (ICRC-1 and legacy account ids)."""

from icp.ledger.account import DEFAULT_SUBACCOUNT, Account, AccountIdentifier

__all__ = ["DEFAULT_SUBACCOUNT", "Account", "AccountIdentifier"]
