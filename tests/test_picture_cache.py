"""Output pictures reach Gradio's cache whole, even when many requests produce the same picture at once.

Two visitors sending the same example photo get byte-identical pictures, which Gradio files under the same
name. Upstream rewrites that file in place, so a download running meanwhile can read it half written; the
app's `cache_pictures_atomically` writes a temporary file and renames it into place instead.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from gradio import processing_utils
from PIL import Image

import app

WRITERS, WRITES_EACH = 4, 40


def hammer(save: object, cache_dir: Path) -> tuple[int, list[int]]:
    """Save one picture from several threads while another thread keeps reading it: (its size, sizes read)."""
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (384, 384, 3), dtype=np.uint8))
    path = Path(save(picture, str(cache_dir), format="jpeg"))
    expected, seen = path.stat().st_size, []
    done = threading.Event()

    def write() -> None:
        for _ in range(WRITES_EACH):
            save(picture, str(cache_dir), format="jpeg")

    def read() -> None:
        while not done.is_set():
            seen.append(len(path.read_bytes()))

    writers = [threading.Thread(target=write) for _ in range(WRITERS)]
    reader = threading.Thread(target=read)
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    return expected, seen


def test_a_picture_produced_by_many_requests_at_once_is_never_read_half_written(tmp_path: Path) -> None:
    upstream = processing_utils.save_pil_to_cache
    try:
        app.cache_pictures_atomically()
        expected, seen = hammer(processing_utils.save_pil_to_cache, tmp_path)
    finally:
        processing_utils.save_pil_to_cache = upstream
    assert seen and all(size == expected for size in seen), sorted(set(seen))
    assert [path.name for path in tmp_path.rglob("*")] == [next(tmp_path.iterdir()).name, "image.jpeg"]  # no leftovers
