"""The lease protocol in-process against moto: exactly one winner, takeover only of stale leases."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

from model_cache import config, s3
from model_cache.lease import Lease


def _settings(env):
    return config.load(SimpleNamespace(), "status", environ=env)


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
    leases, results = _race(client, settings, "models/x/leases/free.json")
    try:
        assert results.count(True) == 1
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
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps({"holder": "dead", "expires": time.time() - 100,
                                                                "ttl": 3}))
    leases, results = _race(client, settings, key)
    try:
        assert results.count(True) == 1
    finally:
        for lease in leases:
            lease.release()
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=key)  # released
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps({"holder": "alive", "expires": time.time() + 100,
                                                                "ttl": 100}))
    assert Lease(client, settings, key).try_acquire() is False


def test_heartbeat_extends_and_detects_takeover(env, bucket):
    settings = _settings(dict(env, MODEL_CACHE_LEASE_TTL="1"))
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
