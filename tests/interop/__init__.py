"""Tests of the client against third-party Bayeux servers run under node."""
