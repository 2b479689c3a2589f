"""HTTP routers, one per resource; the only place HTTP errors are raised."""
