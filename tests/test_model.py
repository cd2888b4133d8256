"""Domain objects: what their identities promise."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import T0
from tests.support import builders


def test_alert_ids_follow_the_moment_of_receipt_and_differ_between_occurrences() -> None:
    moments = [T0 + timedelta(microseconds=n) for n in (0, 1, 2, 1_000_000, 86_400_000_000)]
    ids = [builders.alert(fingerprint=f"fp-{i}", received_at=at).id for i, at in enumerate(moments)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    # Two occurrences received in the same microsecond still get their own ids.
    a, b = builders.alert(fingerprint="a", received_at=T0), builders.alert(fingerprint="b", received_at=T0)
    assert a.id != b.id
    # The same occurrence parsed twice from one delivery is the same alert.
    assert builders.alert(received_at=T0) == builders.alert(received_at=T0)
