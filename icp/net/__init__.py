"""icp.net."""
