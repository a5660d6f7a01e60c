"""The lease protocol in-process against moto: exactly one winner, takeover only of stale leases.

The conditional writes are asserted as they are sent (botocore's before-sign event records every
request's headers): moto honours If-None-Match and If-Match, but the lease also settles and re-reads
after each write, which alone would hide a lost condition in a race.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from types import SimpleNamespace

import pytest
from model_cache import config, s3
from model_cache.lease import Lease


def _settings(env: dict, command: str = "status", **extra: str):
    return config.load(SimpleNamespace(), command, environ=dict(env, **extra))


def plant_lease(client, bucket: str, key: str, holder: str, expires_in: float, ttl: float | None = None) -> str:
    """Another process's lease, expiring ``expires_in`` seconds from now (negative: abandoned); its ETag."""
    doc = {"holder": holder, "expires": time.time() + expires_in}
    if ttl is not None:
        doc["ttl"] = ttl
    return client.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc))["ETag"]


class Wire:
    """Every S3 request a client sends: (operation, headers), recorded where botocore signs it."""

    def __init__(self, client) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []
        client.meta.events.register("before-sign.s3", self._record)

    def _record(self, request, operation_name: str, **_) -> None:
        self.sent.append((operation_name, {k.lower(): v for k, v in request.headers.items()}))

    def of(self, operation: str) -> list[dict[str, str]]:
        return [h for op, h in self.sent if op == operation]


def _race(client, settings, key, n=6):
    leases = [Lease(client, settings, key) for _ in range(n)]
    results = [None] * n
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        results[i] = leases[i].try_acquire()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return leases, results


def test_only_one_of_many_acquires_a_free_lease(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    wire = Wire(client)
    leases, results = _race(client, settings, "models/x/leases/free.json")
    try:
        assert results.count(True) == 1
        # Every create is conditional: the store's If-None-Match, not the settle-and-reread, is what picks
        # the one winner (without it every contender's PUT succeeds and the last writer "wins").
        creates = wire.of("PutObject")
        assert creates and all(h.get("if-none-match") == "*" for h in creates), creates
        winner = leases[results.index(True)]
        doc = json.loads(client.get_object(Bucket=bucket, Key="models/x/leases/free.json")["Body"].read())
        assert doc["holder"] == winner.id
    finally:
        for lease in leases:
            lease.release()


def test_only_one_takes_over_a_stale_lease_and_a_fresh_one_is_respected(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/stale.json"
    stale_etag = plant_lease(client, bucket, key, "dead", expires_in=-100, ttl=3)
    wire = Wire(client)
    leases, results = _race(client, settings, key)
    try:
        assert results.count(True) == 1
        # A contender tries the conditional create (412: the stale lease exists), then takes over with
        # If-Match of the stale version it read: of several takeovers only the first can succeed.
        puts = wire.of("PutObject")
        creates = [h for h in puts if "if-match" not in h]
        takeovers = [h for h in puts if "if-match" in h]
        assert creates and all(h.get("if-none-match") == "*" for h in creates), puts
        assert takeovers and all(h["if-match"] == stale_etag and "if-none-match" not in h for h in takeovers), puts
    finally:
        for lease in leases:
            lease.release()
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=key)  # released
    plant_lease(client, bucket, key, "alive", expires_in=100, ttl=100)
    assert Lease(client, settings, key).try_acquire() is False


def test_heartbeat_extends_and_detects_takeover(env, bucket):
    settings = _settings(env, MODEL_CACHE_LEASE_TTL="1")
    client = s3.make_client(settings)
    key = "models/x/leases/hb.json"
    lease = Lease(client, settings, key)
    assert lease.try_acquire()
    first = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["expires"]
    time.sleep(1.0)
    second = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["expires"]
    assert second > first  # renewed
    client.put_object(Bucket=bucket, Key=key, Body=b'{"holder": "thief", "expires": 9e9}')  # taken over
    deadline = time.monotonic() + 5
    while not lease.lost.is_set():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lease.release()  # must not delete the new holder's lease
    assert json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["holder"] == "thief"


def test_a_free_lease_is_created_with_if_none_match_and_released_with_if_match(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    wire = Wire(client)
    lease = Lease(client, settings, "models/x/leases/wire.json")
    assert lease.try_acquire()
    held = lease.etag
    doc = json.loads(client.get_object(Bucket=bucket, Key=lease.key)["Body"].read())
    assert doc["holder"] == lease.id and doc["ttl"] == settings.lease_ttl
    assert doc["expires"] == pytest.approx(time.time() + settings.lease_ttl, abs=2)
    lease.release()
    # The conditional create is what makes one winner on a store that honours it; the settle-and-reread
    # alone would hide its loss in a race test.
    assert [h.get("if-none-match") for h in wire.of("PutObject")] == ["*"]
    assert [h.get("if-match") for h in wire.of("DeleteObject")] == [held]
    assert lease.etag is None
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=lease.key)


def test_the_heartbeat_renews_with_if_match_of_the_current_version(env, bucket):
    settings = _settings(env, MODEL_CACHE_LEASE_TTL="1")
    client = s3.make_client(settings)
    wire = Wire(client)
    lease = Lease(client, settings, "models/x/leases/beat.json")
    assert lease.try_acquire()
    first = lease.etag
    deadline = time.monotonic() + 5
    while len(wire.of("PutObject")) < 3:
        assert time.monotonic() < deadline, "no heartbeat within 5 s for a 1 s ttl"
        time.sleep(0.05)
    lease.release()
    renewals = wire.of("PutObject")[1:]
    assert renewals[0].get("if-match") == first
    assert renewals[1].get("if-match") not in (None, first)  # each renewal names the version it replaces
    assert not lease.lost.is_set()


def test_a_released_lease_does_not_delete_a_lease_it_no_longer_holds(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    lease = Lease(client, settings, "models/x/leases/gone.json")
    assert lease.try_acquire()
    client.put_object(Bucket=bucket, Key=lease.key, Body=b'{"holder": "other", "expires": 9e9}')
    lease.release()  # the If-Match no longer matches: the other holder's lease stays
    assert json.loads(client.get_object(Bucket=bucket, Key=lease.key)["Body"].read())["holder"] == "other"


def test_staleness_rules(env):
    settings = _settings(env, MODEL_CACHE_CLOCK_SKEW="0")
    lease = Lease(None, settings, "unused")
    now = time.time()
    assert lease.stale({"expires": now - 1, "ttl": 100}, "e1")            # expired by its own clock
    assert lease.stale({"expires": "soon"}, "e1")                          # unreadable: abandoned
    fresh = {"expires": now + 100, "ttl": 0.3}
    assert not lease.stale(fresh, "e2")                                    # first sight: never stale
    assert not lease.stale(fresh, "e2")                                    # unchanged, within its ttl
    time.sleep(0.4)
    assert lease.stale(fresh, "e2")                                        # unchanged for > ttl: holder dead
    assert not lease.stale(fresh, "e3")                                    # renewed (new etag): alive again


def test_clock_skew_keeps_a_just_expired_lease(env):
    settings = _settings(env, MODEL_CACHE_CLOCK_SKEW="30")
    lease = Lease(None, settings, "unused")
    assert not lease.stale({"expires": time.time() - 5, "ttl": 100}, "e")
    assert lease.stale({"expires": time.time() - 60, "ttl": 100}, "e")


def test_a_stale_lease_is_taken_over_with_if_match_of_the_stale_version(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/takeover.json"
    stale_etag = plant_lease(client, bucket, key, "dead", expires_in=-100)
    wire = Wire(client)
    lease = Lease(client, settings, key)
    try:
        assert lease.try_acquire()
    finally:
        lease.release()
    puts = wire.of("PutObject")
    assert puts[0].get("if-none-match") == "*"
    assert puts[1].get("if-match") == stale_etag


def test_a_valid_lease_is_respected_without_a_write(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/alive.json"
    plant_lease(client, bucket, key, "alive", expires_in=100, ttl=100)
    wire = Wire(client)
    assert Lease(client, settings, key).try_acquire() is False
    assert wire.of("PutObject") == []


class NoConditionalOverwrite:
    """A store that refuses ``If-Match`` on PUT, as some S3 implementations do: 501 NotImplemented or
    400 InvalidArgument, with or without an error code (the rest of each request goes to the real server)."""

    def __init__(self, client, code: str, status: int) -> None:
        self.code, self.status = code, status
        client.meta.events.register("before-call.s3.PutObject", self._refuse)

    def _refuse(self, params, **_):
        if "If-Match" not in params.get("headers", {}):
            return None
        http = SimpleNamespace(status_code=self.status, headers={}, raw=None, content=b"")
        error = {"Code": self.code, "Message": "If-Match on PUT"} if self.code else {}
        return http, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": self.status}}


@pytest.mark.parametrize(("code", "status"), [("NotImplemented", 501), ("", 501), ("InvalidArgument", 400),
                                              ("", 400)])
def test_a_store_without_conditional_overwrite_takes_over_by_deleting_exactly_the_stale_version(
        env, bucket, code: str, status: int):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/no-if-match.json"
    stale_etag = plant_lease(client, bucket, key, "dead", expires_in=-100)
    NoConditionalOverwrite(client, code, status)
    wire = Wire(client)
    lease = Lease(client, settings, key)
    try:
        assert lease.try_acquire()
        assert json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["holder"] == lease.id
    finally:
        lease._stop.set()  # no heartbeat: it would renew unconditionally on this store
    assert [h.get("if-match") for h in wire.of("DeleteObject")] == [stale_etag]
    assert [h.get("if-none-match") for h in wire.of("PutObject")] == ["*", "*"]


def test_a_takeover_lost_to_another_waiter_or_to_a_release_is_no_error(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/lost-race.json"
    stale_etag = plant_lease(client, bucket, key, "dead", expires_in=-100)
    winner, loser = Lease(client, settings, key), Lease(client, settings, key)
    try:
        assert winner.try_acquire()
        # The loser read the same stale version before the winner replaced it: its If-Match fails (412).
        assert loser._takeover(stale_etag) is None
        winner.release()
        # ... or the lease is gone altogether (released): If-Match on a missing key (404).
        assert loser._takeover(stale_etag) is None
    finally:
        winner.release()
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=key)


def test_a_lease_without_ttl_uses_the_configured_one(env):
    settings = _settings(env, MODEL_CACHE_CLOCK_SKEW="0")
    lease = Lease(None, settings, "unused")
    doc = {"expires": time.time() + 100}  # an older writer's lease: no "ttl" field
    assert not lease.stale(doc, "e") and not lease.stale(doc, "e")


def test_clock_skew_also_widens_the_unchanged_for_too_long_rule(env):
    settings = _settings(env, MODEL_CACHE_CLOCK_SKEW="5")
    lease = Lease(None, settings, "unused")
    fresh = {"expires": time.time() + 100, "ttl": 0.3}
    assert not lease.stale(fresh, "e")
    time.sleep(0.4)
    assert not lease.stale(fresh, "e")  # 0.4 s unchanged < ttl 0.3 + skew 5


def test_without_conditional_overwrite_a_lost_takeover_is_no_error(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/no-if-match-lost.json"
    stale_etag = plant_lease(client, bucket, key, "dead", expires_in=-100)
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps({"holder": "winner", "expires": time.time() + 100}))
    NoConditionalOverwrite(client, "NotImplemented", 501)
    # The delete names the stale version, which the winner already replaced: 412, and no lease for us.
    assert Lease(client, settings, key)._takeover(stale_etag) is None
    assert json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["holder"] == "winner"


def test_without_conditional_overwrite_a_takeover_of_a_released_lease_is_no_error(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/no-if-match-released.json"
    stale_etag = plant_lease(client, bucket, key, "dead", expires_in=-100)
    NoConditionalOverwrite(client, "NotImplemented", 501)
    client.delete_object(Bucket=bucket, Key=key)  # the holder released it after we read it as stale

    def gone(params, **_):  # the conditional DELETE of a key that no longer exists: 404 NoSuchKey
        if "If-Match" not in params.get("headers", {}):
            return None
        http = SimpleNamespace(status_code=404, headers={}, raw=None, content=b"")
        return http, {"Error": {"Code": "NoSuchKey", "Message": "The specified key does not exist."},
                      "ResponseMetadata": {"HTTPStatusCode": 404}}

    client.meta.events.register("before-call.s3.DeleteObject", gone)
    wire = Wire(client)
    assert Lease(client, settings, key)._takeover(stale_etag) is None
    # No lease was created behind the 404: the next poll reads the key again and starts over.
    assert wire.of("PutObject") == []
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=key)


@pytest.mark.parametrize("doc", [{"expires": float("nan"), "ttl": 100}, {"expires": float("inf"), "ttl": 100},
                                 {"expires": time.time() + 100, "ttl": float("nan")},
                                 {"expires": time.time() + 100, "ttl": float("inf")}],
                         ids=["nan-expires", "inf-expires", "nan-ttl", "inf-ttl"])
def test_a_lease_with_a_non_finite_expiry_or_ttl_is_abandoned(env, doc):
    # json.loads accepts NaN and Infinity: such a lease would never expire by comparison, so it is
    # taken for abandoned at first sight rather than blocking every waiter forever.
    lease = Lease(None, _settings(env, MODEL_CACHE_CLOCK_SKEW="0"), "unused")
    assert lease.stale(doc, "e") is True


def test_a_lost_lease_is_not_deleted_on_release(env, bucket):
    settings = _settings(env, MODEL_CACHE_LEASE_TTL="1")
    client = s3.make_client(settings)
    lease = Lease(client, settings, "models/x/leases/lost.json")
    assert lease.try_acquire()
    client.put_object(Bucket=bucket, Key=lease.key, Body=b'{"holder": "thief", "expires": 9e9}')
    assert lease.lost.wait(5), "the heartbeat did not notice the takeover"
    wire = Wire(client)
    lease.release()
    assert wire.of("DeleteObject") == []  # not even a conditional one: the lease is someone else's now


def _store_answers_delete(client, answer) -> None:
    """DeleteObject If-Match answered by ``answer`` instead of the server: (status, code) or an exception."""
    def hook(params, **_):
        if isinstance(answer, Exception):
            raise answer
        status, code = answer
        http = SimpleNamespace(status_code=status, headers={}, raw=None, content=b"")
        return http, {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}

    client.meta.events.register("before-call.s3.DeleteObject", hook)


@pytest.mark.parametrize(("answer", "warning"), [
    ((412, "PreconditionFailed"), None),     # someone took it over meanwhile: theirs now, nothing to say
    ((404, "NoSuchKey"), None),              # already gone
    ((403, "AccessDenied"), "could not release the lease (AccessDenied); it expires by itself"),
    ("connection", "could not release the lease (EndpointConnectionError); it expires by itself"),
], ids=["412", "404", "403", "connection"])
def test_a_failed_release_is_a_warning_never_an_error(env, bucket, caplog, answer, warning):
    from botocore.exceptions import EndpointConnectionError

    settings = _settings(env)
    client = s3.make_client(settings)
    lease = Lease(client, settings, "models/x/leases/release-fails.json")
    assert lease.try_acquire()
    if answer == "connection":
        answer = EndpointConnectionError(endpoint_url=env["S3_ENDPOINT_URL"])
    _store_answers_delete(client, answer)
    caplog.set_level(logging.INFO, logger="model_cache.lease")
    lease.release()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ([warning] if warning else [])
    assert lease.etag is None


def _on_create(client, action) -> None:
    """Run ``action(params)`` when the lease's conditional create (PUT If-None-Match) is about to be sent;
    what it returns (None: send the request as it is) is what botocore takes for the response."""
    def hook(params, **_):
        if params.get("headers", {}).get("If-None-Match") == "*":
            return action(params)
        return None

    client.meta.events.register("before-call.s3.PutObject", hook)


def _answer(status: int, code: str):
    http = SimpleNamespace(status_code=status, headers={}, raw=None, content=b"")
    error = {"Code": code, "Message": code} if code else {}
    return http, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}


def test_a_create_lost_to_a_fresh_lease_waits_and_leaves_it_alone(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/race-lost.json"
    other = s3.make_client(settings)
    rival = json.dumps({"holder": "rival", "expires": time.time() + 100, "ttl": 100})
    # Between our look (no lease) and our create, another process creates it: the store answers 412.
    _on_create(client, lambda params: other.put_object(Bucket=bucket, Key=key, Body=rival) and None)
    wire = Wire(client)
    assert Lease(client, settings, key).try_acquire() is False
    assert json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["holder"] == "rival"
    assert [h.get("if-none-match") for h in wire.of("PutObject")] == ["*"]  # no second write, no takeover


def test_a_create_refused_for_a_lease_released_meanwhile_retries_later(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    # 412 to our create, but the lease is gone when we read it again (released in between).
    _on_create(client, lambda params: _answer(412, "PreconditionFailed"))
    wire = Wire(client)
    assert Lease(client, settings, "models/x/leases/race-released.json").try_acquire() is False
    assert wire.of("PutObject") == []  # refused before it was sent; nothing written after


@pytest.mark.parametrize("code", ["NotImplemented", ""], ids=["code", "status-only"])
def test_a_store_without_if_none_match_gets_write_then_verify(env, bucket, caplog, code):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/no-if-none-match.json"
    # Some stores answer 501 with no error code at all: the status is what names it then.
    _on_create(client, lambda params: _answer(501, code))
    wire = Wire(client)
    caplog.set_level(logging.INFO, logger="model_cache.lease")
    lease = Lease(client, settings, key)
    try:
        assert lease.try_acquire() is True
        assert json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["holder"] == lease.id
        assert lease.etag == client.head_object(Bucket=bucket, Key=key)["ETag"]
    finally:
        lease.release()
    assert [h.get("if-none-match") for h in wire.of("PutObject")] == [None]  # the plain PUT
    assert ("the store does not support If-None-Match; using write-then-verify for the lease"
            in [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING])


def test_without_if_none_match_an_abandoned_lease_is_taken_over_by_write_then_verify(env, bucket, caplog):
    """A store that answers 501 to conditional PUTs: the expired lease of a dead holder is replaced
    by a plain PUT, confirmed by the settle + re-read. Raising instead left it in place for good."""
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/no-if-none-match-stale.json"
    plant_lease(client, bucket, key, "dead", expires_in=-100)
    _on_create(client, lambda params: _answer(501, "NotImplemented"))
    wire = Wire(client)
    caplog.set_level(logging.INFO, logger="model_cache.lease")
    lease = Lease(client, settings, key)
    try:
        assert lease.try_acquire() is True
        assert json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["holder"] == lease.id
    finally:
        lease.release()
    assert [h.get("if-none-match") for h in wire.of("PutObject")] == [None]  # one plain PUT, no retry
    assert any(r.getMessage().startswith("lease held by dead expired") for r in caplog.records)


def test_without_if_none_match_a_valid_lease_is_never_overwritten(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/no-if-none-match-valid.json"
    plant_lease(client, bucket, key, "alive", expires_in=100, ttl=100)
    _on_create(client, lambda params: _answer(501, "NotImplemented"))
    wire = Wire(client)
    assert Lease(client, settings, key).try_acquire() is False
    assert wire.of("PutObject") == []
    assert json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["holder"] == "alive"


@pytest.mark.parametrize(("doc", "says"), [
    ({"holder": "dead/1/abc", "expires": 1_000_000_000},
     "lease held by dead/1/abc expired (expires=2001-09-09T01:46:40Z); taking it over"),
    ({"renewed": 1}, "lease held by ? expired (expires=?); taking it over"),
], ids=["named", "anonymous"])
def test_a_takeover_names_the_holder_and_its_expiry(env, bucket, caplog, doc, says):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/takeover-log.json"
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc))
    caplog.set_level(logging.INFO, logger="model_cache.lease")
    lease = Lease(client, settings, key)
    try:
        assert lease.try_acquire()
    finally:
        lease.release()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [says]
