"""The benchmark suite of issue 7: the proxy against aiohttp floors measured in the same run.

Run it with ``python -m bench`` (see bench/README.md); it is not part of the test command.
"""
