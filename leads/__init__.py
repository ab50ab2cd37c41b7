"""leads: capture clinic website enquiries, keep them safe, tell the clinic at once."""

from __future__ import annotations

__version__ = "0.1.0"
