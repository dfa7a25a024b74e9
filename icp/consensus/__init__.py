"""icp.consensus."""
