"""Prometheus text exposition read back with prometheus_client's own parser, for the tests' assertions."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, frozenset[tuple[str, str]]]


def key(name: str, **labels: str) -> Key:
    """A sample's key in ``samples()``: its name and its labels."""
    return name, frozenset(labels.items())


def samples(text: str | bytes) -> dict[Key, float]:
    """Every sample of an exposition, by name and labels; a sample given twice fails the test."""
    found: dict[Key, float] = {}
    for family in text_string_to_metric_families(text.decode() if isinstance(text, bytes) else text):
        for sample in family.samples:
            sample_key = key(sample.name, **sample.labels)
            assert sample_key not in found, f"duplicate sample {sample_key}"
            found[sample_key] = sample.value
    return found


def types(text: str | bytes) -> dict[str, str]:
    """Every family of an exposition, by name (a counter's without ``_total``), with its type."""
    parsed = text_string_to_metric_families(text.decode() if isinstance(text, bytes) else text)
    return {family.name: family.type for family in parsed}


def labelled(found: dict[Key, float], name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of one name, by their labels."""
    return {labels: value for (sample_name, labels), value in found.items() if sample_name == name}
