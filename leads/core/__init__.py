"""The vocabulary every side shares: forms, the attribution fields, time windows, and the
named values stored in the database. It imports nothing from intake, notify or staff."""
