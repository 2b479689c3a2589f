"""The orchestration server: REST API, database, orchestration rules.

Never imports the engine, the client, workers or the CLI (ARCHITECTURE.md section 3).
"""
