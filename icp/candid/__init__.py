"""icp.candid."""
