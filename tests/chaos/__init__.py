"""Chaos tests: a consumer process under network drops, revoked tokens and SIGKILLs."""
