"""Serializer fields built once per thread answer exactly as freshly built ones."""

import threading

from notify.api.messages import MessageOutput, Messages

VALID = {"channel": "email", "to": "ana@example.com", "subject": "Hi", "body": "Hello"}


def test_kept_fields__same_serializer_used_again__same_validation_each_time():
    # Given one good and one bad body, validated in turn, several times
    bad = {**VALID, "to": "not an address", "fallback": [{"channel": "sms", "to": "x"}]}
    answers = []
    for _ in range(3):
        for body in (VALID, bad):
            serializer = Messages.InputSerializer(data=body)
            answers.append((serializer.is_valid(), sorted(serializer.errors)))
    # Then each time answers the same (no state left behind by an earlier call)
    assert answers == [answers[0], answers[1]] * 3
    assert answers[0] == (True, []) and answers[1][0] is False


def test_kept_fields__nested_serializers__bound_to_their_own_parent():
    serializer = Messages.InputSerializer(data=VALID)
    nested = serializer.fields["fallback"]
    assert nested.parent is serializer
    assert nested.child.fields["channel"].parent is nested.child
    assert nested.child.fields["channel"].root is serializer


def test_kept_fields__threads__each_keeps_its_own_fields():
    seen = {}

    def fields_of_this_thread(name: str) -> None:
        seen[name] = id(MessageOutput(instance=None).fields["id"])

    threads = [threading.Thread(target=fields_of_this_thread, args=(n,)) for n in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fields_of_this_thread("main")
    fields_of_this_thread("main again")
    assert len({seen["a"], seen["b"], seen["main"]}) == 3
    assert seen["main"] == seen["main again"]
