"""HTTP plumbing shared by the public and staff sides: bodies, errors, health."""
