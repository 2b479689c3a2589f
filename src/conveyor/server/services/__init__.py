"""Background services: loops the server runs beside the API, each one small and bounded."""
