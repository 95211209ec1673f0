"""The public server's settings: upload size, model runs at once, queue length, temp-file sweep, served paths.

Each number is explained in the README's "Deploying as a Space"; `app.serve` applies them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from gradio import processing_utils

from poolformer import hub

# Uploads above this are refused by the server itself with HTTP 413. A 12-MP phone JPEG is 3–8 MB, so
# 20 MB admits any real photo while bounding what a burst of uploads costs in memory and temp space.
MAX_UPLOAD_SIZE = os.environ.get("POOLFORMER_MAX_UPLOAD", "20mb")
# Model runs at once, over all API endpoints together (they share one concurrency group). On CPU each run gets
# its share of the cores (torch_threads_per_request), so two runs side by side don't wait on each other; the
# second keeps one slow call (compare over every model, a Hub download being waited for) from holding up
# everybody behind it.
# The picker's model loading keeps its own slots, and page loads and progress ticks bypass the queue.
MODEL_RUNS_AT_ONCE = 2
# Calls waiting at once, over all events; the next one is told the queue is full and to try again. 48 visitors
# mixing every endpoint were served at about 3 calls/s on a shared 2-core CPU: a full queue drains in 10–15 s.
QUEUE_SIZE = 32
# Every hour, delete uploads and outputs older than an hour: nobody needs them once the page has shown them.
# POOLFORMER_TEMP_FILE_SWEEP="FREQUENCY,AGE" (seconds) changes it.
TEMP_FILE_SWEEP = tuple(int(part) for part in os.environ.get("POOLFORMER_TEMP_FILE_SWEEP", "3600,3600").split(","))


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
