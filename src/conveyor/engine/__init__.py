"""The client-side engine: flows, tasks, their runs, futures, results and logs."""
