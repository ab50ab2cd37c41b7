"""Storage: tables, the database connection, migrations and data-access functions."""
