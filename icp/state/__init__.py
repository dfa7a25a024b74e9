"""icp.state."""
