"""The visitor's language: the catalogs of leads/locale/ (catalogs.py) and how a request's
language is chosen (choice.py). Imports only the shared vocabulary (core)."""
