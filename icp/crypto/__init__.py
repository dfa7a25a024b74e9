"""icp.crypto."""
