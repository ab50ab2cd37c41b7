"""The public side: what visitors send, how it is checked, and how it is stored."""
