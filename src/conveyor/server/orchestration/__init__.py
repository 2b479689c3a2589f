"""Orchestration of flow-run states: small named rules in an ordered policy.

This package is the only writer of flow-run state (ARCHITECTURE.md section 2).
"""
