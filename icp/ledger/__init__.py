"""icp.ledger."""
