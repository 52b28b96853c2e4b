"""Tools for developers: a PostgreSQL server we start ourselves, and the local stack."""
