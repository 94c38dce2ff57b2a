"""The ``samedge`` command line (see :mod:`samedge.cli.main`)."""
