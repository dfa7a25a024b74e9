"""icp.execution."""
