def test_healthz__no_worker_answers__503_naming_the_worker(client, db):
    # Given this test process's in-memory broker, where no worker listens
    # When
    response = client.get("/healthz")
    # Then
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is True
    assert body["worker"]["ok"] is False


class UnreachableDatabase:
    vendor = "postgresql"

    def cursor(self):  # noqa: ANN201
        raise ConnectionError("database unreachable")


def test_healthz__database_down__503(client, db, monkeypatch):
    monkeypatch.setattr("notify.api.health.connection", UnreachableDatabase())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == {"ok": False, "error": "database unreachable"}
