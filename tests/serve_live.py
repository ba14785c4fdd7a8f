"""A real uvicorn server on 127.0.0.1 (a free port picked by the OS) in a background thread, and a
streaming HTTP client that timestamps every read — shared by the serve API and browser tests."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import torch
import uvicorn

import arwave
from arwave.serve import ServeSettings, create_app


class LiveServer:
    def __init__(self, settings: ServeSettings):
        self.app = create_app(settings)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def conn(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get_json(self, path: str) -> tuple[int, dict]:
        c = self.conn()
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()

    def post(self, body, raw: bytes | None = None) -> http.client.HTTPResponse:
        """Send a generate request and return the response once its headers are in (body unread)."""
        c = self.conn()
        data = raw if raw is not None else json.dumps(body).encode()
        sent = time.perf_counter()
        c.request("POST", "/api/generate", body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r._test_conn, r._test_sent = c, sent  # keep the connection alive as long as the response
        return r

    def generate_json(self, body) -> tuple[int, dict, http.client.HTTPResponse]:
        r = self.post(body)
        return r.status, json.loads(r.read()), r

    def wait_idle(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while True:
            running = self.get_json("/api/status")[1]["running"]
            if running == 0 or time.monotonic() > deadline:
                return running
            time.sleep(0.05)


def read_timed(r: http.client.HTTPResponse) -> list[tuple[float, bytes]]:
    """Read a response to the end as it arrives: [(seconds since the request was sent, bytes of one read)]."""
    t0, out = getattr(r, "_test_sent", time.perf_counter()), []
    while True:
        data = r.read1(1 << 16)
        if not data:
            return out
        out.append((time.perf_counter() - t0, data))


def make_runs_root(cam_run: Path, root: Path, outside: Path) -> None:
    """root/group/cam: a servable CAM run; root/codec-only: a codec run (not servable);
    outside/secret: a CAM run outside the root, reachable from root/escape by a symlink."""
    shutil.copytree(cam_run, root / "group" / "cam")
    shutil.copytree(cam_run / "codec", root / "codec-only")
    shutil.copytree(cam_run, outside / "secret")
    (root / "escape").symlink_to(outside / "secret", target_is_directory=True)


def expected_pcm(run: Path, seconds: float, seed: int, **sampling) -> bytes:
    """What the server must send for these settings: the model's own stream, as 16-bit PCM."""
    model = arwave.load(run)
    audio = torch.cat(list(model.stream(seconds=seconds, seed=seed, **sampling)), dim=-1)
    data = np.clip(audio.float().numpy(), -1.0, 1.0)
    return np.round(data.T * 32767.0).astype("<i2").tobytes()
