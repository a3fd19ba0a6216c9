"""The ``ftc`` command line: thin commands over the Python API, loaded lazily."""
