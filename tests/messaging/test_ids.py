from datetime import UTC, datetime

from notify.messaging.ids import allocate_ids, is_message_id


def test_allocate_ids__many__legacy_shape_unique_and_outside_old_gateway_range(db):
    # When
    ids = allocate_ids(500) + allocate_ids(500)
    # Then
    assert len(set(ids)) == 1000
    for message_id in ids:
        assert is_message_id(message_id)
        # The old gateway numbers each second from 000001 and never reached 500000.
        assert int(message_id[12:]) >= 500000
        assert int(message_id) < 2**63  # clients parse them as signed 64-bit integers


def test_allocate_ids__given_time__prefix_is_shanghai_wall_clock(db):
    (message_id,) = allocate_ids(1, at=datetime(2026, 11, 21, 16, 30, 5, tzinfo=UTC))
    assert message_id.startswith("261122003005")


def test_allocate_ids__same_second__increasing(db):
    at = datetime(2026, 1, 1, tzinfo=UTC)
    ids = allocate_ids(3, at=at)
    assert ids == sorted(ids)


def test_create_message__id_taken_with_the_insert__legacy_shape_shared_sequence_and_clock(
    tenant, monkeypatch
):
    # Given the counter every process shares, just used by allocate_ids
    from notify.messaging import services
    from notify.messaging.ids import legacy_now
    from notify.messaging.services import MessageDraft, create_message

    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)
    before = legacy_now().strftime("%y%m%d%H%M%S")
    (first,) = allocate_ids(1)
    # When single messages are stored (on PostgreSQL their ID comes with the insert)
    draft = MessageDraft(channel="email", recipient="ana@example.com", subject="S", body="B")
    created = [create_message(tenant=tenant, draft=draft).id for _ in range(3)]
    after = legacy_now().strftime("%y%m%d%H%M%S")
    # Then each has the legacy shape, its clock is the legacy zone's, and the counter is the same
    for message_id in created:
        assert is_message_id(message_id) and int(message_id[12:]) >= 500000
        assert before <= message_id[:12] <= after
    sequence = [int(first[12:])] + [int(message_id[12:]) for message_id in created]
    assert sequence == sorted(sequence) and len(set(sequence)) == 4
