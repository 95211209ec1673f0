"""Official weights fetched from the Hub in background threads, so no request waits on the Hub for long.

A request for an official variant that is not cached starts its download (or joins the one running)
and waits at most REQUEST_WAIT_S; after that the visitor hears "still downloading", and the download
goes on for the next request. Progress goes to the log (logger `poolformer.explorer.downloads`) and,
for the default model's background download, to the app's status line through `note()`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from poolformer import hub
from poolformer.explorer.common import ExplorerError, LoadReporter
from poolformer.model import Variant
from poolformer.weights import WeightsError

# A request waits at most this long for a download, so a stalled Hub never holds a worker for long;
# on a Space the Hub sends S12 (47 MB) in about a second, M48 (295 MB) in a few.
REQUEST_WAIT_S = 20
REPORT_EVERY_S = 1.0  # how often a waiting request's progress bar is updated
LOG_STEPS = 10  # log lines per download: one every 10 %

log = logging.getLogger(__name__)


@dataclass
class Download:
    """One attempt at fetching a variant's official files; `done` is set when it succeeded or failed."""

    variant: Variant
    done: threading.Event = field(default_factory=threading.Event)
    received: int = 0
    total: int | None = None
    error: hub.HubError | None = None
    logged_step: int = 0

    @property
    def failed(self) -> bool:
        return self.done.is_set() and self.error is not None

    def progress(self) -> str:
        if not self.total:
            return f"{self.received / 1e6:.1f} MB so far"
        return f"{100 * self.received // self.total} % of {self.total / 1e6:.1f} MB"

    def update(self, received: int, total: int | None) -> None:
        """Called by the progress bar as bytes arrive; logs every 1/LOG_STEPS of the file."""
        self.received, self.total = received, total
        step = LOG_STEPS * received // total if total else 0
        if step > self.logged_step:
            self.logged_step = step
            log.info("%s: %s", self.variant.hub_repo, self.progress())


class Downloads:
    """At most one download per variant at a time, each in its own daemon thread."""

    def __init__(self) -> None:
        self._downloads: dict[str, Download] = {}
        self._lock = threading.Lock()  # guards the table
        self._background: Variant | None = None  # the default model fetched at start-up, shown in the status

    def start(self, variant: Variant, *, background: bool = False) -> Download:
        """The running download of `variant`, or a new one (a finished attempt is never reused)."""
        with self._lock:
            if background:
                self._background = variant
            current = self._downloads.get(variant.name)
            if current is not None and not current.done.is_set():
                return current
            download = self._downloads[variant.name] = Download(variant)
        threading.Thread(target=self._run, args=(download,), name=f"download-{variant.name}", daemon=True).start()
        return download

    def fetch(self, variant: Variant, report: LoadReporter | None = None, wait_s: float = REQUEST_WAIT_S) -> None:
        """Return once `variant`'s official files are in the cache; otherwise a one-line error within wait_s."""
        if hub.cached_files(variant) is not None:
            return
        if hub.is_offline():  # no thread, no delay
            raise WeightsError(str(hub.unavailable(variant, "HF_HUB_OFFLINE is set")))
        download = self.start(variant)
        deadline = time.monotonic() + wait_s
        while not download.done.wait(timeout=max(0.0, min(REPORT_EVERY_S, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                raise ExplorerError(
                    f"the official {variant.name} weights are still downloading from the Hub ({download.progress()}); "
                    "try again in a minute, or pick another model meanwhile"
                )
            if report is not None:
                report(f"Downloading the official {variant.name} weights: {download.progress()}…")
        if download.error is not None:
            raise WeightsError(str(download.error))

    def note(self, *, landed: bool = False) -> str:
        """One line on the start-up download of the default model while it runs or after it failed;
        with `landed`, also once it has succeeded. '' when there is nothing to say."""
        with self._lock:
            variant = self._background
            download = self._downloads.get(variant.name) if variant else None
        if download is None:
            return ""
        name = f"official PoolFormer-{variant.name.upper()}"
        if not download.done.is_set():
            return f"Downloading the {name} weights in the background: {download.progress()}. They become the default when done."
        if download.error is not None:
            return f"The {name} weights could not be downloaded ({download.error.reason}), so the bundled model stays the default."
        return f"The {name} weights have been downloaded: the default model from your next page load." if landed else ""

    def background_running(self) -> bool:
        with self._lock:
            download = self._downloads.get(self._background.name) if self._background else None
        return download is not None and not download.done.is_set()

    def _run(self, download: Download) -> None:
        repo = download.variant.hub_repo
        log.info("%s: downloading the official weights from the Hub", repo)
        try:
            hub.download(download.variant, progress=download.update)
        except hub.HubError as error:
            download.error = error
            log.warning("%s: download failed: %s", repo, error)
        except Exception as error:  # a bug must not leave waiting requests hanging
            download.error = hub.unavailable(download.variant, f"the download crashed ({error!r})")
            log.exception("%s: download crashed", repo)
        else:
            log.info("%s: downloaded into the Hugging Face cache", repo)
        finally:
            download.done.set()


DOWNLOADS = Downloads()
