"""The HTTP contract of a ready server (tiny random model on CPU, real uvicorn on loopback)."""

from __future__ import annotations

import json

import pytest
from helpers import ThreadServer, assert_clean_error, metric_samples, parse_sse, wait_health
from hf_server import Settings, create_app

SERVED = "tiny-llama"
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello, how are you?"}]


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    settings = Settings(
        model_path=str(tiny_model_dir),
        served_model_name=SERVED,
        quantization="none",
        max_concurrency=2,
        max_queue=4,
        max_tokens_limit=64,
        default_max_tokens=16,
    )
    with ThreadServer(create_app(settings)) as srv:
        with srv.client() as c:
            wait_health(c)
        yield srv


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c


def test_health_reports_the_loaded_model(client):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {
        "status",
        "model_loaded",
        "model",
        "quantization",
        "attention",
        "vram_used_gb",
        "device",
    }
    assert body["status"] == "ok" and body["model_loaded"] is True
    assert body["model"] == SERVED
    assert body["quantization"] == "none"
    assert body["attention"] == "sdpa"  # CPU: FlashAttention-2 is never chosen
    assert body["device"] == "cpu" and body["vram_used_gb"] is None
    assert "error" not in body


def test_models_lists_the_served_name(client):
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [SERVED]


def test_completion_matches_direct_transformers_generation(client, reference):
    prompt = "the quick brown fox"
    r = client.post(
        "/v1/completions", json={"model": SERVED, "prompt": prompt, "max_tokens": 12, "temperature": 0}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    ids = reference.prompt_ids(prompt)
    text, n, finish = reference.greedy(ids, 12)
    assert body["object"] == "text_completion" and body["model"] == SERVED
    assert body["choices"][0]["text"] == text
    assert body["choices"][0]["finish_reason"] == finish
    assert body["usage"] == {"prompt_tokens": len(ids), "completion_tokens": n, "total_tokens": len(ids) + n}


def test_chat_completion_uses_the_chat_template(client, reference):
    r = client.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 10, "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    ids = reference.chat_ids(MESSAGES)
    text, n, finish = reference.greedy(ids, 10)
    choice = body["choices"][0]
    assert body["object"] == "chat.completion"
    assert choice["message"] == {"role": "assistant", "content": text}
    assert choice["finish_reason"] == finish
    # the template wraps every message: more prompt tokens than the bare contents would give
    assert (
        body["usage"]["prompt_tokens"] == len(ids) > len(reference.prompt_ids("be brief hello, how are you?"))
    )
    assert body["usage"]["completion_tokens"] == n


def test_chat_stream_is_sse_and_equals_the_non_streamed_answer(client):
    req = {"messages": MESSAGES, "max_tokens": 14, "temperature": 0}
    full = client.post("/v1/chat/completions", json=req).json()
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={**req, "stream": True, "stream_options": {"include_usage": True}},
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events, done = parse_sse(raw)
    assert done, "stream must end with data: [DONE]"
    assert all(e["object"] == "chat.completion.chunk" and e["id"] == events[0]["id"] for e in events)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    content_events = [e for e in events if e["choices"] and e["choices"][0]["delta"].get("content")]
    assert len(content_events) >= 2, "the answer should arrive in several chunks"
    streamed = "".join(e["choices"][0]["delta"]["content"] for e in content_events)
    assert streamed == full["choices"][0]["message"]["content"]
    finals = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
    assert [f["choices"][0]["finish_reason"] for f in finals] == [full["choices"][0]["finish_reason"]]
    assert events[-1]["choices"] == [] and events[-1]["usage"] == full["usage"]


def test_completion_stream_equals_the_non_streamed_text(client):
    req = {"prompt": "hello world", "max_tokens": 9, "temperature": 0}
    full = client.post("/v1/completions", json=req).json()
    r = client.post("/v1/completions", json={**req, "stream": True})
    events, done = parse_sse(r.text)
    assert done and all(e["object"] == "text_completion" for e in events)
    assert "".join(e["choices"][0]["text"] for e in events) == full["choices"][0]["text"]
    assert events[-1]["choices"][0]["finish_reason"] == full["choices"][0]["finish_reason"]
    assert not any("usage" in e for e in events)  # only with stream_options.include_usage


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequence_cuts_the_text(client, stream):
    base = {"prompt": "a GPU inference platform", "max_tokens": 24, "temperature": 0}
    full = client.post("/v1/completions", json=base).json()["choices"][0]["text"]
    assert len(full) >= 6, f"greedy text too short to pick a stop string from: {full!r}"
    stop = full[3:5]
    expected = full[: full.find(stop)]
    r = client.post("/v1/completions", json={**base, "stop": [stop], "stream": stream})
    assert r.status_code == 200, r.text
    if stream:
        events, _ = parse_sse(r.text)
        text = "".join(e["choices"][0]["text"] for e in events)
        finish = events[-1]["choices"][0]["finish_reason"]
    else:
        text, finish = r.json()["choices"][0]["text"], r.json()["choices"][0]["finish_reason"]
    assert text == expected
    assert finish == "stop"


def test_sampling_with_temperature_stays_within_max_tokens(client):
    for _ in range(3):
        body = client.post(
            "/v1/completions", json={"prompt": "hello", "max_tokens": 5, "temperature": 1.5, "top_p": 0.9}
        ).json()
        assert 1 <= body["usage"]["completion_tokens"] <= 5


def test_explicit_nulls_mean_defaults(client):
    body = {
        "prompt": "hello",
        "max_tokens": None,
        "temperature": None,
        "top_p": None,
        "n": None,
        "stream": None,
        "stop": None,
        "min_tokens": None,
        "user": "someone",
        "presence_penalty": 0,
    }
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "text_completion"  # stream=None: not streamed
    assert 1 <= r.json()["usage"]["completion_tokens"] <= 16  # DEFAULT_MAX_TOKENS of the fixture


def test_default_max_tokens_applies(client):
    body = client.post("/v1/completions", json={"prompt": "hello", "temperature": 0}).json()
    assert body["usage"]["completion_tokens"] <= 16
    if body["choices"][0]["finish_reason"] == "length":
        assert body["usage"]["completion_tokens"] == 16


def test_min_tokens_forces_the_length(client):
    for stream in (False, True):
        r = client.post(
            "/v1/completions",
            json={
                "prompt": "hello",
                "max_tokens": 20,
                "min_tokens": 20,
                "temperature": 1.0,
                "stream": stream,
                "stream_options": {"include_usage": True},
            },
        )
        assert r.status_code == 200, r.text
        usage = parse_sse(r.text)[0][-1]["usage"] if stream else r.json()["usage"]
        assert usage["completion_tokens"] == 20


def _family(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_tokens_and_latency(client):
    before = metric_samples(client.get("/metrics").text)
    body = client.post("/v1/completions", json={"prompt": "hello", "max_tokens": 7, "temperature": 0}).json()
    client.post("/v1/completions", json={"prompt": "hello", "temperature": 9})  # 400
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = metric_samples(r.text)
    ok = {"endpoint": "/v1/completions", "status": "200"}
    bad = {"endpoint": "/v1/completions", "status": "400"}
    assert (
        _family(after, "hf_server_requests_total", **ok)
        == _family(before, "hf_server_requests_total", **ok) + 1
    )
    assert (
        _family(after, "hf_server_requests_total", **bad)
        == _family(before, "hf_server_requests_total", **bad) + 1
    )
    assert (
        _family(after, "hf_server_generated_tokens_total")
        - _family(before, "hf_server_generated_tokens_total")
        == body["usage"]["completion_tokens"]
    )
    assert (
        _family(after, "hf_server_prompt_tokens_total") - _family(before, "hf_server_prompt_tokens_total")
        == body["usage"]["prompt_tokens"]
    )
    lat = "hf_server_request_latency_seconds_count"
    assert (
        _family(after, lat, endpoint="/v1/completions")
        == _family(before, lat, endpoint="/v1/completions") + 2
    )
    assert _family(after, "hf_server_queue_depth") == 0
    assert _family(after, "hf_server_active_generations") == 0
    assert _family(after, "hf_server_model_loaded") == 1


def test_metrics_label_unknown_paths_as_other(client):
    for i in range(3):
        assert client.get(f"/no-such-path-{i}").status_code == 404
    samples = metric_samples(client.get("/metrics").text)
    assert _family(samples, "hf_server_requests_total", endpoint="other", status="404") >= 3
    assert not any("no-such-path" in str(k) for k in samples)


GOOD_CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    "path,body,needles",
    [
        ("/v1/chat/completions", {"messages": []}, ["messages", "at least one message"]),
        ("/v1/chat/completions", {}, ["messages", "required"]),
        ("/v1/chat/completions", {**GOOD_CHAT, "temperature": 2.5}, ["temperature", "2"]),
        ("/v1/chat/completions", {**GOOD_CHAT, "temperature": -0.1}, ["temperature"]),
        ("/v1/chat/completions", {**GOOD_CHAT, "max_tokens": 0}, ["max_tokens"]),
        ("/v1/chat/completions", {**GOOD_CHAT, "max_tokens": 65}, ["max_tokens", "64"]),
        ("/v1/chat/completions", {**GOOD_CHAT, "max_completion_tokens": 1000}, ["max_tokens", "64"]),
        ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]}, ["role"]),
        ("/v1/chat/completions", {"messages": "hi"}, ["messages"]),
        ("/v1/chat/completions", {**GOOD_CHAT, "n": 2}, ["n"]),
        ("/v1/completions", {"prompt": "", "max_tokens": 4}, ["prompt", "empty"]),
        ("/v1/completions", {"prompt": ["a", "b"]}, ["prompt", "one prompt"]),
        ("/v1/completions", {"max_tokens": 4}, ["prompt"]),
        ("/v1/completions", {"prompt": "hi", "max_tokens": "many"}, ["max_tokens"]),
        ("/v1/completions", {"prompt": "hi", "top_p": 0}, ["top_p"]),
        ("/v1/completions", {"prompt": "hi", "max_tokens": 4, "min_tokens": 5}, ["min_tokens", "max_tokens"]),
        ("/v1/completions", {"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}, ["stop"]),
        ("/v1/completions", {"prompt": "hi " * 400, "max_tokens": 64}, ["context length"]),
    ],
)
def test_invalid_requests_get_400_with_a_clear_message(client, path, body, needles):
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert_clean_error(r.text, *needles)


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"prompt": "x",}', b"[1, 2]"])
def test_malformed_json_gets_a_message_not_a_traceback(client, raw):
    r = client.post("/v1/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    assert_clean_error(r.text)


def test_unknown_model_is_404(client):
    r = client.post("/v1/completions", json={"model": "gpt-9", "prompt": "hi", "max_tokens": 2})
    assert r.status_code == 404
    assert_clean_error(r.text, "gpt-9", SERVED)


def test_wrong_method_and_path_are_json_errors(client):
    r = client.get("/v1/completions")
    assert r.status_code == 405
    assert_clean_error(r.text)
    assert_clean_error(client.get("/nope").text)


def test_internal_errors_never_leak_a_traceback(server, client, monkeypatch):
    engine = server.app.state.engine

    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail /srv/private/path")

    monkeypatch.setattr(engine, "generate", boom)
    r = client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2})
    assert r.status_code == 500
    assert "secret internal detail" not in r.text
    assert_clean_error(r.text, "internal")
    samples = metric_samples(client.get("/metrics").text)  # same keep-alive connection: still usable
    assert _family(samples, "hf_server_requests_total", endpoint="/v1/completions", status="500") >= 1
    monkeypatch.setattr(engine, "stream", boom)
    r = client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2, "stream": True})
    events, done = parse_sse(r.text)
    assert done and "secret internal detail" not in r.text
    assert events[-1]["error"]["type"] == "internal_error"
    # the failed requests gave their generation slots back
    assert server.app.state.limiter.sem._value == 2
    assert json.loads(client.get("/health").text)["model_loaded"] is True
