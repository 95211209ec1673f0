"""The public server's settings: upload and request size, model runs at once, queue length, sessions kept,
temp-file sweep, served paths.

Each number is explained in the README's "Deploying as a Space"; `app.serve` applies them.
"""

from __future__ import annotations

import ctypes
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from gradio import processing_utils, route_utils, state_holder

from poolformer import hub

# Uploads above this are refused by the server itself with HTTP 413. A 12-MP phone JPEG is 3–8 MB, so
# 20 MB admits any real photo while bounding what a burst of uploads costs in memory and temp space.
MAX_UPLOAD_SIZE = os.environ.get("POOLFORMER_MAX_UPLOAD", "20mb")
# Model runs at once, over all API endpoints together (they share one concurrency group). On CPU each run gets
# its share of the cores (torch_threads_per_request), so two runs side by side don't wait on each other; the
# second keeps one slow call (compare over every model, a Hub download being waited for) from holding up
# everybody behind it.
# Every queued event that computes (token clicks and colour-scale redraws too) shares them; only the picker's
# model loading keeps its own slots (MODEL_LOADING: a download may hold one for 20 s), and page loads and
# progress ticks bypass the queue.
MODEL_RUNS_AT_ONCE = 2
MODEL_RUNS, MODEL_LOADING = "model runs", "model loading"  # the two concurrency groups
# Calls waiting at once, over all events; the next one is told the queue is full and to try again. 48 visitors
# mixing every endpoint were served at about 3 calls/s on a shared 2-core CPU: a full queue drains in 10–15 s.
QUEUE_SIZE = 32
# Request bodies other than uploads: a call's JSON is under 2 KB, so 64 KB is room enough, while nobody can make
# the server parse (and our messages echo) megabytes of stage lists or class names.
MAX_REQUEST_BODY = 64 * 1024
# Visitors whose page state Gradio keeps (the last prediction, 0.3 MB; no copy of the page's settings, see
# sessions_without_page_copies), the longest unseen forgotten first. Gradio's default, 10,000, would let the state of that many visits
# (or of requests naming made-up sessions) grow to 6 GB; a forgotten visitor's token clicks ask for Predict again.
SESSIONS_KEPT = 300
# Every hour, delete uploads and outputs older than an hour: nobody needs them once the page has shown them.
# POOLFORMER_TEMP_FILE_SWEEP="FREQUENCY,AGE" (seconds) changes it.
TEMP_FILE_SWEEP = tuple(int(part) for part in os.environ.get("POOLFORMER_TEMP_FILE_SWEEP", "3600,3600").split(","))


# glibc's malloc, as MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_ would set it. By default it keeps up to 8 arenas
# per core (one per thread that allocates) and, after the first big buffer is freed, serves buffers up to 32 MB
# from them rather than from the kernel, so freed tensors and pictures stay in the process. benchmarks/soak.py
# (600 or 400 calls, 4 clients, a new visitor every 10 calls): default 839 -> 1,363 MB and still climbing;
# 2 arenas 711 -> 902 MB; a fixed 128 KB mmap threshold 584 -> 664 MB. Both are set here (README, Deploying).
MALLOC_SETTINGS = {-8: 2, -3: 128 * 1024}  # mallopt's M_ARENA_MAX, M_MMAP_THRESHOLD (glibc's malloc.h)
MALLOC_VARIABLES = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")


def bound_malloc_retention() -> None:
    """Apply MALLOC_SETTINGS before the server's threads start, unless the environment sets glibc's own variables;
    elsewhere (macOS, musl) there is nothing to do."""
    if any(variable in os.environ for variable in MALLOC_VARIABLES):
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    for parameter, value in MALLOC_SETTINGS.items():
        mallopt(parameter, value)


def share_model_run_slots(page: Any) -> None:
    """Put every queued event of `page` (a gr.Blocks), present and future, into the MODEL_RUNS group, except
    the ones already in MODEL_LOADING: without it each event had slots of its own, so token clicks on the four
    stage maps could run eight model passes beside the two of the API."""
    for event in page.fns.values():
        if event.queue and event.concurrency_id != MODEL_LOADING:
            event.concurrency_id = MODEL_RUNS


def never_served() -> list[str]:
    """The Hugging Face cache (with any token beside it) and the repository. Gradio serves only its own
    temp files anyway; blocking these holds even if GRADIO_TEMP_DIR or allowed_paths are set carelessly."""
    return [*hub.cache_dirs(), str(Path(__file__).resolve().parent.parent)]


def torch_threads_per_request() -> int:
    """Intra-op threads for each model run: its share of the cores, unless OMP_NUM_THREADS says otherwise.

    Runs go side by side (an upload redraws the diagram while Predict runs; visitors overlap), and every torch
    operation waits for all of its threads: with two threads per run on two busy cores, /predict and /ablate
    took 2-3 times as long over the Gradio floor as with one (benchmarks/app_latency.py measures both).
    """
    if "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    return max(1, (os.cpu_count() or 1) // MODEL_RUNS_AT_ONCE)


def cache_pictures_atomically() -> None:
    """Make Gradio put each output picture into its cache by writing a temporary file and renaming it into place.

    Gradio 6.31 names a cached picture after the hash of its bytes and rewrites it in place (truncate, then
    write) every time it is produced. Two visitors who get the same picture at once (the same example photo)
    then race: one download can be cut short while the other request rewrites the file, and the browser shows a
    broken image. Gradio already copies other files this way; an existing copy is only touched, since
    `delete_cache` ages files by their ctime.
    """

    def save_pil_to_cache(img: Any, cache_dir: str, name: str = "image", format: str = "webp") -> str:
        data = processing_utils.encode_pil_to_bytes(img, format)
        folder = Path(cache_dir) / processing_utils.hash_bytes(data)
        folder.mkdir(exist_ok=True, parents=True)
        path = (folder / f"{name}.{format}").resolve()
        if path.exists():
            os.utime(path)
            return str(path)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".partial-", delete=False) as partial:
            partial.write(data)
        os.replace(partial.name, path)
        return str(path)

    processing_utils.save_pil_to_cache = save_pil_to_cache  # Gradio's components call it through the module


def sessions_without_page_copies() -> None:
    """Make each new Gradio session skip its copy of every component's settings (0.33 MB a visitor here).

    Gradio 6.31 copies them when a session starts, for one use: gr.DeepLinkButton, which saves a session's page
    to a file. This app links to a view with query parameters instead (ui/links.py), so the copy only held
    memory, 6.5 MB over the soak's 20 new visitors in its second half. What a session changes is still recorded.
    """
    start_session = state_holder.SessionState.__init__

    def start_without_copy(session: Any, blocks: Any) -> None:
        start_session(session, blocks)
        session.config_values = {}

    state_holder.SessionState.__init__ = start_without_copy


def sweep_temp_files_safely() -> None:
    """Make Gradio's temp-file sweep (`delete_cache`) survive uploads that arrive while it runs.

    Gradio 6.31 walks each of its sets of temporary files while requests add to them; an upload during the walk
    raises "Set changed size during iteration", which ends the sweeping task for good, so the folder then grows
    without bound (four clients uploading for a minute: 17,000 files kept, none deleted after the first
    seconds). This sweep walks a snapshot of each set, and one failed deletion never stops the schedule.
    """

    def delete_files_created_by_app(blocks: Any, age: float | None) -> None:
        kept = set().union(*(getattr(block, "keep_in_cache", set()) for block in list(blocks.blocks.values())))
        now = time.time()
        for files in list(blocks.temp_file_sets):
            gone = set()
            for path in list(files):  # a snapshot: requests go on adding to the set meanwhile
                if path in kept:
                    continue
                try:
                    if age is None or now - os.lstat(path).st_ctime > age:
                        os.remove(path)
                        gone.add(path)
                except FileNotFoundError:
                    gone.add(path)
                except OSError as error:
                    logging.getLogger("poolformer").warning("temp-file sweep: %s", error)
            files.difference_update(gone)

    route_utils.delete_files_created_by_app = delete_files_created_by_app  # looked up there at every sweep


class RequestBodyLimit:
    """ASGI middleware: a request body (other than an upload, which `max_file_size` bounds) over `limit` bytes is
    answered with HTTP 413 before it is read, or cut off as soon as a body without a declared length passes it."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/").endswith("/upload"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            return await too_large(send, self.limit)
        received = 0

        async def receive_within_limit() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return {"type": "http.disconnect"} if received > self.limit else message

        return await self.app(scope, receive_within_limit, send)


async def too_large(send: Any, limit: int) -> None:
    body = f"request body over {limit // 1024} KB; photos go through the upload route".encode()
    await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
