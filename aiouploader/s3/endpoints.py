"""S3's endpoint rule set evaluated once per bucket, not once per key.

botocore resolves every request's endpoint from the rule set, and keeps the
results in a cache keyed by every rule-set parameter it was given, ``Key``
among them, although no rule reads it: each new key evaluated the whole rule
set again (about a tenth of a small upload's CPU). Parameters that no rule
mentions are left out of the call, so that the cache keys on what decides the
endpoint: the bucket, the region, the endpoint URL and the client's flags.
"""

from __future__ import annotations

from typing import Any


def mentioned(node: Any, into: set[str]) -> set[str]:
    """Every string in a rule tree: a rule reads a parameter through ``{"ref": name}`` or a ``{name}`` template."""
    if isinstance(node, str):
        into.add(node)
    elif isinstance(node, dict):
        for key, value in node.items():
            mentioned(key, into)
            mentioned(value, into)
    elif isinstance(node, list | tuple):
        for item in node:
            mentioned(item, into)
    elif hasattr(node, "__dict__"):
        mentioned(vars(node), into)
    return into


def unread_parameters(ruleset: Any) -> frozenset[str]:
    """The rule set's parameters that no rule mentions, not even inside a longer string."""
    strings = mentioned(ruleset.rules, set())
    return frozenset(name for name in ruleset.parameters if not any(name in text for text in strings))


class KeyedOnWhatMatters:
    """botocore's endpoint provider, called without the parameters its rules never read."""

    def __init__(self, provider: Any, unread: frozenset[str]) -> None:
        self.provider = provider
        self.ruleset = provider.ruleset
        self.unread = unread

    def resolve_endpoint(self, **params: Any) -> Any:
        return self.provider.resolve_endpoint(**{name: v for name, v in params.items() if name not in self.unread})


def resolve_per_bucket(client: Any) -> bool:
    """Make ``client`` resolve one endpoint per bucket; whether it could (a client without a rule set cannot)."""
    resolver: Any = getattr(client, "_ruleset_resolver", None)
    provider = getattr(resolver, "_provider", None)
    if isinstance(provider, KeyedOnWhatMatters):
        return True
    if provider is None or not hasattr(provider, "ruleset") or not hasattr(provider, "resolve_endpoint"):
        return False
    unread = unread_parameters(provider.ruleset)
    if not unread:
        return False
    resolver._provider = KeyedOnWhatMatters(provider, unread)
    return True
