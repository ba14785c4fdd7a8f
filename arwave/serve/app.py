"""The web app behind `arwave serve`: one page and a small JSON + WAV API (Starlette, run by uvicorn).

    GET  /                    the page (page.html)
    GET  /api/models          {"models": [names], "max_seconds", "max_concurrent"}
    GET  /api/models/NAME     {"name", "kind", "sample_rate", "channels", "labels", "options", "max_seconds"}
    GET  /api/status          {"running", "max_concurrent"}
    POST /api/generate        JSON {"model", "seconds", "seed", "class", "cfg", "k_inf"} (all but "model"
                              optional; a missing option means the model's default) -> a 16-bit PCM WAV
                              sent while it is generated: chunked transfer, the header's RIFF and data
                              sizes 0xFFFFFFFF ("unknown length"), exactly what `arwave stream -` writes

Errors are JSON {"error": CODE, "message": TEXT}: 400 bad request, 404 unknown model, 413 body too large,
503 busy (with Retry-After) when `max_concurrent` generations are already running.

Why a thread per generation: generating is CPU-bound torch work that would stall the event loop. Each
request gets its own thread that runs the model's `stream` generator and hands encoded PCM bytes to the
event loop through an asyncio.Queue; the response sends whatever has queued up since the last send (so
fast models are not sent 160 samples at a time). The endpoint waits for the first audio (or an error)
before it answers, so a bad class name or k_inf still gets a JSON 400 rather than a broken stream. If
the client goes away the thread stops after its current chunk.

A generation holds one of `max_concurrent` slots from the request until its response has been sent
(or the client has gone): a slow reader keeps its slot, which bounds memory as well as CPU.

Which models: only names in `available_models(root)` — bundled names plus the cam/aar/nexttoken run
folders found under the runs root (a few levels deep, symlinks leaving the root ignored). A request's
name is looked up in that table and never joined onto a path, so "../x", "/etc" or "a/../../b" reach
nothing. Models without a streaming decoder (the next-token baseline) are generated one training
window at a time, each window continuing the last, so they stream per window.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route

from arwave.errors import ArwaveError

log = logging.getLogger("arwave.serve")

GENERATOR_KINDS = ("cam", "aar", "nexttoken")
SCAN_DEPTH = 3  # runs root / group / run: how deep run folders are looked for
MAX_BODY_BYTES = 4096  # a generate request is a handful of fields
WAV_HEADER_BYTES = 44
REQUEST_FIELDS = ("model", "seconds", "seed", "class", "cfg", "k_inf")
PAGE = Path(__file__).with_name("page.html")


@dataclass
class ServeSettings:
    runs_root: str = "runs"
    max_seconds: float = 30.0  # longest clip one request may ask for
    max_concurrent: int = 8  # generations at once; the next request gets 503 "busy"
    default_seconds: float = 4.0
    model_cache: int = 4  # loaded models kept in memory


# ---------------------------------------------------------------------------------------------------
# which models may be served


def bundled_names() -> list[str]:
    """Names of the bundled generators whose weights are installed (`arwave models`)."""
    from arwave.pretrained import KNOWN, root

    return [
        name
        for name, known in KNOWN.items()
        if known.kind in ("cam", "aar", "nexttoken") and (root() / name / "model.safetensors").is_file()
    ]


def _run_kind(folder: Path) -> str | None:
    try:
        return json.loads((folder / "config.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def run_folders(root: str | Path) -> dict[str, Path]:
    """{name: folder} for every cam/aar/nexttoken run under `root` (name = its path relative to the root,
    or the root's own name when the root is a run). Runs are not searched inside (their codec copy is
    not a model to serve); hidden folders and symlinks that leave the root are skipped."""
    root = Path(root).resolve()
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    if (root / "config.json").is_file():
        if _run_kind(root) in GENERATOR_KINDS:
            found[root.name] = root
        return found

    def visit(folder: Path, depth: int) -> None:
        try:
            children = sorted(folder.iterdir())
        except OSError:
            return
        for child in children:
            if child.name.startswith(".") or not child.is_dir():
                continue
            real = child.resolve()
            if not real.is_relative_to(root):
                continue
            if (child / "config.json").is_file():
                if _run_kind(child) in GENERATOR_KINDS:
                    found[child.relative_to(root).as_posix()] = real
            elif depth > 1:
                visit(child, depth - 1)

    visit(root, SCAN_DEPTH)
    return found


def model_table(runs_root: str | Path) -> dict[str, str]:
    """{name: what `arwave.load` is given}: bundled names first, then run folders (a run may not shadow a
    bundled name)."""
    table = {name: name for name in bundled_names()}
    for name, folder in run_folders(runs_root).items():
        table.setdefault(name, str(folder))
    return table


def available_models(runs_root: str | Path) -> list[str]:
    """The model names the server offers and accepts: bundled names, then run folders under the root."""
    return list(model_table(runs_root))


# ---------------------------------------------------------------------------------------------------
# loaded models, concurrency slots


class ModelCache:
    """Loaded models by (name, checkpoint folder), so a run that trained on is reloaded; least recently
    used dropped beyond `size`. Loading is serialised (two first requests load a model once)."""

    def __init__(self, size: int):
        self.size = max(1, int(size))
        self._models: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def get(self, target: str):
        from arwave.checkpoint import resolve_run
        from arwave.generation import load_generator

        key = (target, str(resolve_run(target)[1]) if Path(target).exists() else "")
        with self._lock:
            model = self._models.pop(key, None)
            if model is None:
                model = load_generator(target)
                prepare = getattr(getattr(getattr(model, "codec", None), "decoder", None), "prepare_inference", None)
                if prepare is not None:
                    import torch

                    with torch.no_grad():
                        prepare()  # once, here, rather than racing in the first concurrent streams
            self._models[key] = model
            while len(self._models) > self.size:
                self._models.pop(next(iter(self._models)))
            return model


class Slots:
    """A counter of running generations with a hard limit (thread-safe)."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ArwaveError(f"--max-concurrent must be >= 1, got {limit}")
        self.limit, self.used = int(limit), 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.used = max(0, self.used - 1)


# ---------------------------------------------------------------------------------------------------
# requests


class RequestError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message)


def error_response(status: int, code: str, message: str, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status, headers=headers)


@dataclass
class GenerateRequest:
    model: str
    seconds: float
    seed: int | None
    class_label: str | None
    cfg: float | None
    k_inf: float | None


def _number(body: dict, key: str, lo: float, hi: float, integer: bool = False, hi_open: bool = False):
    value = body.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RequestError(400, "bad_request", f"{key} must be a number, got {value!r}")
    try:
        x = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise RequestError(
            400, "bad_request", f"{key} must be {'an integer' if integer else 'a number'}, got {value!r}"
        ) from None
    if not math.isfinite(x) or x < lo or x > hi or (hi_open and x >= hi):
        raise RequestError(
            400, "bad_request", f"{key} must be in [{lo:g}, {hi:g}{')' if hi_open else ']'}, got {value!r}"
        )
    return x


def parse_generate(body, settings: ServeSettings, table: dict[str, str]) -> GenerateRequest:
    """Check a generate request's fields and bounds; the model name must be in the served table."""
    if not isinstance(body, dict):
        raise RequestError(400, "bad_request", "the request body must be a JSON object")
    unknown = sorted(set(body) - set(REQUEST_FIELDS))
    if unknown:
        raise RequestError(
            400, "bad_request", f"unknown field(s) {', '.join(unknown)} (known: {', '.join(REQUEST_FIELDS)})"
        )
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise RequestError(400, "bad_request", "model: a model name is required (GET /api/models lists them)")
    if name not in table:
        raise RequestError(
            404, "unknown_model", f"unknown model {name[:200]!r} (GET /api/models lists the served ones)"
        )
    seconds = _number(body, "seconds", 0.0, settings.max_seconds)
    seconds = settings.default_seconds if seconds is None else seconds
    if seconds <= 0:
        raise RequestError(400, "bad_request", f"seconds must be > 0, got {seconds:g}")
    label = body.get("class")
    if (label is not None and not isinstance(label, (str, int))) or isinstance(label, bool):
        raise RequestError(400, "bad_request", f"class must be a class name or index, got {label!r}")
    label = None if label in (None, "") else str(label)[:200]
    return GenerateRequest(
        model=name,
        seconds=seconds,
        seed=_number(body, "seed", 0, 2**31 - 1, integer=True),
        class_label=label,
        cfg=_number(body, "cfg", 0.0, 50.0),
        k_inf=_number(body, "k_inf", 0.0, 1.0, hi_open=True),
    )


async def read_json_body(request: Request, limit: int = MAX_BODY_BYTES):
    """The request's JSON body, refused (413) beyond `limit` bytes without reading more than that."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, "too_large", f"request body over {limit} bytes")
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > limit:
            raise RequestError(413, "too_large", f"request body over {limit} bytes")
    try:
        return json.loads(data.decode("utf-8") or "null")
    except (UnicodeDecodeError, ValueError):
        raise RequestError(400, "bad_request", "the request body is not valid JSON") from None


# ---------------------------------------------------------------------------------------------------
# generation on a thread, chunks to the event loop


def audio_chunks(model, seconds: float, seed: int | None, **sampling) -> Iterator:
    """(channels, n) chunks of one clip: the model's own `stream` when it has one; otherwise (the base
    class's one-chunk `stream`) one training window at a time, each continuing the previous window."""
    from arwave.models.generator import AudioGenerator

    own_stream = getattr(type(model), "stream", None) is not AudioGenerator.stream
    options = getattr(model, "sampling_options", None)
    if own_stream or (options is not None and "prompt" not in options):
        yield from model.stream(seconds=seconds, seed=seed, **sampling)
        return
    from arwave.evaluation.fad_over_time import training_context_seconds

    rate = int(model.sample_rate)
    total = int(round(seconds * rate))
    window = max(1, int(round(training_context_seconds(model) * rate)))
    done, previous, i = 0, None, 0
    while done < total:
        n = min(window, total - done)
        kw = dict(sampling) if previous is None else {**sampling, "prompt": previous}
        clip = model.generate(n / rate, num=1, seed=None if seed is None else seed + i, **kw)[0]
        yield clip
        previous, done, i = clip, done + clip.shape[-1], i + 1


class _Sink:
    """A write-only file object for WavStreamWriter that hands each write to `push`."""

    def __init__(self, push: Callable[[bytes], None]):
        self.write, self.flush = push, (lambda: None)

    def seekable(self) -> bool:
        return False


class Generation:
    """One generation on its own thread. Items on `queue`: ("data", bytes) — the WAV header, then PCM —,
    ("error", exception), then ("end", None)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, cache: ModelCache, target: str, req: GenerateRequest):
        self.loop, self.cache, self.target, self.req = loop, cache, target, req
        self.queue: asyncio.Queue = asyncio.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"arwave-gen-{req.model}", daemon=True)

    def _push(self, kind: str, value) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: the server is shutting down
            self.stop.set()

    def _run(self) -> None:
        from arwave.data.audio import WavStreamWriter
        from arwave.generation import sampling_kwargs

        chunks = None
        try:
            model = self.cache.get(self.target)
            r = self.req
            labels = list(getattr(model, "label_names", []) or [])
            if r.class_label is not None and r.class_label not in labels and not r.class_label.isdigit():
                raise ArwaveError(
                    f"unknown class {r.class_label!r} (known: "
                    f"{', '.join(labels) or 'none: the model is unconditional'})"
                )
            kwargs = sampling_kwargs(model, SimpleNamespace(class_label=r.class_label, cfg=r.cfg, k_inf=r.k_inf))
            writer = WavStreamWriter(_Sink(lambda b: self._push("data", b)), model.sample_rate, model.channels)
            chunks = audio_chunks(model, r.seconds, r.seed, **kwargs)
            for chunk in chunks:
                if self.stop.is_set():
                    break
                writer.write(chunk)
        except Exception as err:  # reported to the client (JSON before the first audio) and logged
            self._push("error", err)
        finally:
            if chunks is not None:
                chunks.close()
            self._push("end", None)


# ---------------------------------------------------------------------------------------------------
# the app


def create_app(settings: ServeSettings | None = None) -> Starlette:
    settings = settings or ServeSettings()
    if not settings.max_seconds > 0:
        raise ArwaveError(f"--max-seconds must be > 0, got {settings.max_seconds}")
    slots = Slots(settings.max_concurrent)
    cache = ModelCache(settings.model_cache)
    settings.default_seconds = min(settings.default_seconds, settings.max_seconds)

    async def page(request: Request):
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-store"})

    async def models(request: Request):
        return JSONResponse(
            {
                "models": available_models(settings.runs_root),
                "max_seconds": settings.max_seconds,
                "default_seconds": settings.default_seconds,
                "max_concurrent": slots.limit,
            }
        )

    async def model_info(request: Request):
        name = request.path_params["name"]
        table = model_table(settings.runs_root)
        if name not in table:
            return error_response(404, "unknown_model", f"unknown model {name[:200]!r}")
        try:
            model = await asyncio.to_thread(cache.get, table[name])
        except ArwaveError as err:
            return error_response(400, "bad_model", str(err))
        options = getattr(model, "sampling_options", None)
        options = sorted(options) if options is not None else ["class_label", "cfg"]
        return JSONResponse(
            {
                "name": name,
                "kind": getattr(getattr(model, "config", None), "kind", type(model).__name__),
                "sample_rate": int(model.sample_rate),
                "channels": int(model.channels),
                "labels": list(getattr(model, "label_names", []) or []),
                "options": options,
                "max_seconds": settings.max_seconds,
                "default_seconds": settings.default_seconds,
            }
        )

    async def status(request: Request):
        return JSONResponse({"running": slots.used, "max_concurrent": slots.limit})

    async def generate(request: Request):
        try:
            body = await read_json_body(request)
            table = model_table(settings.runs_root)
            req = parse_generate(body, settings, table)
        except RequestError as err:
            return err.response()
        if not slots.try_acquire():
            return error_response(
                503,
                "busy",
                f"busy: {slots.limit} generations are running, the limit of this server; try again in a few seconds",
                headers={"Retry-After": "5"},
                running=slots.used,
                max_concurrent=slots.limit,
            )
        job = Generation(asyncio.get_running_loop(), cache, table[req.model], req)
        released = False

        def finish() -> None:
            nonlocal released
            job.stop.set()
            if not released:
                released = True
                slots.release()

        try:
            job.thread.start()
            head, received, ended = [], 0, False
            while received <= WAV_HEADER_BYTES:  # wait for the first audio, or an early error
                kind, value = await job.queue.get()
                if kind == "error":
                    finish()
                    status = 400 if isinstance(value, ArwaveError) else 500
                    if status == 500:
                        log.error("generation failed: %r", value, exc_info=value)
                    return error_response(status, "bad_request" if status == 400 else "generation_failed", str(value))
                if kind == "end":
                    ended = True
                    break
                head.append(value)
                received += len(value)
        except BaseException:
            finish()
            raise

        async def body():
            try:
                yield b"".join(head)
                if ended:
                    return
                while True:
                    items = [await job.queue.get()]
                    while not job.queue.empty():  # send all that queued up since the last send
                        items.append(job.queue.get_nowait())
                    data = b"".join(v for k, v in items if k == "data")
                    if data:
                        yield data
                    for k, v in items:
                        if k == "error":
                            log.error("generation failed mid-stream: %r", v, exc_info=v)
                    if any(k == "end" for k, _ in items):
                        return
            finally:
                finish()

        return _StreamingWav(
            body(),
            finish,
            media_type="audio/wav",
            headers={
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Content-Disposition": f'inline; filename="{_download_name(req)}"',
            },
        )

    routes = [
        Route("/", page),
        Route("/api/models", models),
        Route("/api/models/{name:path}", model_info),
        Route("/api/status", status),
        Route("/api/generate", generate, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.settings, app.state.slots = settings, slots
    return app


def _download_name(req: GenerateRequest) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in req.model)[-60:]
    return f"arwave-{safe}-seed{req.seed if req.seed is not None else 'random'}.wav"


class _StreamingWav(StreamingResponse):
    """A StreamingResponse that frees the generation's slot however the response ends (also when the
    body is never iterated because the client left first)."""

    def __init__(self, content, on_close: Callable[[], None], **kw):
        super().__init__(content, **kw)
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
