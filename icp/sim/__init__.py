"""icp.sim."""
