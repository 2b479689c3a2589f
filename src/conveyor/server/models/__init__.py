"""Query functions: ``(session, ...) -> rows``. The only place SQL lives."""
