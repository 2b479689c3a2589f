"""Workers: long-running processes that claim a pool's due runs and launch each one.

``base`` is the loop (claim -> launch -> watch -> report), ``process`` the local process
job, ``execute`` the module a run's process runs.
"""
