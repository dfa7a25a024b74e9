"""icp.nns."""
