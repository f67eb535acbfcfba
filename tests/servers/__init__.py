"""Apps and launchers for the tests that run the toolkit on real servers.

:mod:`servers.app` is the app every server serves (its bridge is chosen by the
``ASYNCEXT_TEST_BRIDGE`` environment variable), :mod:`servers.serve` starts
the servers that have no command line of their own, and
:mod:`servers.harness` starts any of them in a subprocess and loads it.
"""
