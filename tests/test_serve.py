"""`arwave serve`: the API over a real uvicorn server on 127.0.0.1 — streaming, limits, busy answers,
path traversal — and the pieces behind it (model table, slots, per-window chunking)."""

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from arwave.cli.main import build_parser, main
from arwave.models.generator import AudioGenerator
from arwave.serve import ServeSettings, available_models
from arwave.serve import app as serve_app
from arwave.serve.app import Slots, audio_chunks

sys.path.insert(0, str(Path(__file__).parent))
from serve_live import LiveServer, expected_pcm, make_runs_root, read_timed  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_installed_bundles")  # they serve their own runs

RATE, CHANNELS = 16000, 2  # the tiny CAM run of conftest.py
HEADER = 44


@pytest.fixture(scope="module")
def runs(cam_run, tmp_path_factory):
    root, outside = tmp_path_factory.mktemp("serve-runs"), tmp_path_factory.mktemp("serve-outside")
    make_runs_root(cam_run, root, outside)
    return SimpleNamespace(root=root, outside=outside, cam=root / "group" / "cam")


@pytest.fixture(scope="module")
def server(runs):
    s = LiveServer(ServeSettings(runs_root=str(runs.root), max_seconds=30))  # default max_concurrent (8)
    yield s
    s.close()


def pcm_bytes(seconds: float) -> int:
    return round(seconds * RATE) * CHANNELS * 2


# ---------------------------------------------------------------------------------------------------
# which models


def test_serve_lists_generator_runs_under_the_root_only(runs, monkeypatch):
    assert available_models(runs.root) == ["group/cam"]  # not the codec, not the symlink out, not cam/codec
    assert available_models(runs.cam) == ["cam"]  # the root may be one run
    assert available_models(runs.root / "missing") == []
    monkeypatch.setattr(serve_app, "bundled_names", lambda: ["bundled-cam"])
    assert available_models(runs.root) == ["bundled-cam", "group/cam"]


def test_serve_refuses_path_traversal(server, runs):
    status, listing = server.get_json("/api/models")
    assert status == 200 and listing["models"] == ["group/cam"]
    for name in (
        "../serve-outside0/secret",
        str(runs.outside / "secret"),
        "escape",
        "group/../escape",
        "group/cam/codec",
        "codec-only",
        str(runs.cam),
        "group/cam/../../escape",
        "./group/cam",
    ):
        status, answer, _ = server.generate_json({"model": name, "seconds": 0.1})
        assert status == 404 and answer["error"] == "unknown_model", (name, answer)
    for path in (
        "/api/models/..%2F..%2Fetc",
        "/api/models/escape",
        "/api/models/%2e%2e/serve-outside0/secret",
        "/api/models/codec-only",
    ):
        status, answer = server.get_json(path)
        assert status == 404 and answer["error"] == "unknown_model", (path, answer)


def test_serve_model_info_and_page(server):
    status, info = server.get_json("/api/models/group/cam")
    assert status == 200
    assert info["kind"] == "cam" and info["labels"] == ["high", "low"]
    assert info["sample_rate"] == RATE and info["channels"] == CHANNELS
    assert {"class_label", "cfg", "k_inf"} <= set(info["options"])
    c = server.conn()
    c.request("GET", "/")
    r = c.getresponse()
    html = r.read().decode()
    assert r.status == 200 and r.getheader("content-type").startswith("text/html")
    assert 'id="generate"' in html and "/api/generate" in html
    assert "http://" not in html and "https://" not in html  # no CDN: the page works offline


# ---------------------------------------------------------------------------------------------------
# streaming


def test_serve_streams_audio_before_generation_ends(server, runs):
    seconds = 2.0
    r = server.post({"model": "group/cam", "seconds": seconds, "seed": 4, "class": "high", "cfg": 2.0, "k_inf": 0.1})
    assert r.status == 200 and r.getheader("content-type") == "audio/wav"
    assert r.getheader("transfer-encoding") == "chunked"
    reads = read_timed(r)
    data = b"".join(d for _, d in reads)
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE" and data[36:40] == b"data"
    assert len(data) == HEADER + pcm_bytes(seconds)
    # chunk and time evidence: audio came in many reads, the first long before the last
    got, first_audio = 0, None
    for t, d in reads:
        got += len(d)
        if got > HEADER and first_audio is None:
            first_audio = t
    end = reads[-1][0]
    assert len(reads) >= 3, [len(d) for _, d in reads]
    assert first_audio < 0.5 * end, (first_audio, end)
    # and it is exactly what the model streams for these settings
    assert data[HEADER:] == expected_pcm(runs.cam, seconds, seed=4, class_label="high", cfg=2.0, k_inf=0.1)


def test_serve_answers_bad_requests_with_json(server):
    cases = [
        ({"model": "group/cam", "seconds": 31}, 400, "seconds"),
        ({"model": "group/cam", "seconds": -1}, 400, "seconds"),
        ({"model": "group/cam", "seconds": 0}, 400, "seconds"),
        ({"model": "group/cam", "k_inf": 1.0}, 400, "k_inf"),
        ({"model": "group/cam", "cfg": "lots"}, 400, "cfg"),
        ({"model": "group/cam", "seed": -3}, 400, "seed"),
        ({"model": "group/cam", "class": "zebra", "seconds": 0.1}, 400, "zebra"),
        ({"model": "group/cam", "top_k": 5}, 400, "top_k"),
        ({"seconds": 1}, 400, "model"),
        (["group/cam"], 400, "JSON object"),
    ]
    for body, status, word in cases:
        got, answer, _ = server.generate_json(body)
        assert (got, answer["error"]) == (status, "bad_request") and word in answer["message"], (body, answer)
    r = server.post(None, raw=b"{not json")
    assert r.status == 400 and json.loads(r.read())["error"] == "bad_request"
    r = server.post(None, raw=json.dumps({"model": "group/cam", "class": "x" * 8000}).encode())
    assert r.status == 413 and json.loads(r.read())["error"] == "too_large"
    assert server.wait_idle() == 0  # failed requests hold no slot


def test_serve_client_that_leaves_frees_its_slot(server):
    r = server.post({"model": "group/cam", "seconds": 25, "seed": 1})
    assert r.status == 200 and len(r.read1(1 << 16)) > 0
    assert server.get_json("/api/status")[1]["running"] == 1
    r._test_conn.sock.close()  # the browser tab closes
    r._test_conn.close()
    t0 = time.monotonic()
    assert server.wait_idle(timeout=15) == 0
    assert time.monotonic() - t0 < 10  # stopped early: 25 s of audio was not made


# ---------------------------------------------------------------------------------------------------
# concurrency


def test_serve_load_eight_streams_finish_and_the_ninth_is_busy(server):
    seconds = 0.5
    streams = [server.post({"model": "group/cam", "seconds": seconds, "seed": i % 2}) for i in range(8)]
    firsts = []
    for r in streams:  # every stream has started: all 8 slots are held
        assert r.status == 200
        firsts.append(r.read1(1 << 16))
    assert server.get_json("/api/status")[1] == {"running": 8, "max_concurrent": 8}
    status, answer, ninth = server.generate_json({"model": "group/cam", "seconds": seconds})
    assert status == 503 and answer["error"] == "busy" and "8 generations" in answer["message"]
    assert ninth.getheader("retry-after") == "5"
    bodies = [first + b"".join(d for _, d in read_timed(r)) for first, r in zip(firsts, streams)]
    assert all(len(b) == HEADER + pcm_bytes(seconds) for b in bodies)
    assert all(b == bodies[i % 2] for i, b in enumerate(bodies))  # concurrent streams do not disturb each other
    assert bodies[0] != bodies[1]
    assert server.wait_idle() == 0
    r = server.post({"model": "group/cam", "seconds": 0.1})  # slots are free again
    assert r.status == 200 and len(r.read()) == HEADER + pcm_bytes(0.1)


def test_serve_default_limit_logic():
    assert ServeSettings().max_concurrent == 8
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.max_concurrent, args.max_seconds) == ("127.0.0.1", 8, 30.0)
    slots = Slots(ServeSettings().max_concurrent)
    assert [slots.try_acquire() for _ in range(9)] == [True] * 8 + [False]
    slots.release()
    assert slots.try_acquire() and not slots.try_acquire()
    with pytest.raises(Exception, match="max-concurrent"):
        Slots(0)


def test_serve_cli_refuses_a_root_without_models(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ARWAVE_PRETRAINED_DIR", str(tmp_path / "no-bundles"))  # whatever the install ships
    assert main(["serve", "--runs-root", str(tmp_path)]) == 2
    assert "no models to serve" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------
# models without a streaming decoder: one training window at a time


class WindowModel(AudioGenerator):
    """Records its generate calls; 'audio' = seed + the position of each sample within the clip."""

    sample_rate, channels = 100, 1
    sampling_options = frozenset({"prompt", "cfg"})
    config = SimpleNamespace(model=SimpleNamespace(), data=SimpleNamespace(segment_seconds=0.25))

    def __init__(self):
        super().__init__()
        self.calls = []

    def generate(self, seconds, num=1, seed=None, **sampling):
        self.calls.append((seconds, seed, sampling))
        n = round(seconds * self.sample_rate)
        return (torch.arange(n, dtype=torch.float32) + seed)[None, None]


def test_serve_chunks_per_window_without_a_stream():
    model = WindowModel()
    chunks = list(audio_chunks(model, 0.9, seed=5, cfg=2.0))
    assert [c.shape[-1] for c in chunks] == [25, 25, 25, 15]  # windows of 0.25 s, cut to 0.9 s
    assert [seed for _, seed, _ in model.calls] == [5, 6, 7, 8]
    assert "prompt" not in model.calls[0][2] and all(kw["cfg"] == 2.0 for _, _, kw in model.calls)
    for previous, (_, _, kw) in zip(chunks, model.calls[1:]):  # each window continues the last
        assert torch.equal(kw["prompt"], previous)
