"""Workers: long-running processes that claim a pool's due runs and launch each one.

``base`` is the loop (claim -> launch -> watch -> report), ``process`` the local process
job, ``execute`` the module a run's process runs. ``launcher`` starts each job through
the worker's fork server (``forkserver`` runs in it, ``forkchild`` in each of its
children, ``forked`` is the worker's side) or, when it cannot, as a plain subprocess.
"""
