"""icp.http."""
