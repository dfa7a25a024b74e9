"""icp.messaging."""
