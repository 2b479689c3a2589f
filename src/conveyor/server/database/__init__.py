"""ORM tables, the async engine and sessions, and migrations (SQLite and PostgreSQL)."""
