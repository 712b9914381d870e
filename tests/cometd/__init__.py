"""Unit tests of the sans-I/O core of :mod:`aiosfstream.cometd`."""
