"""Hub repos fetched in background threads, so no request waits on the Hub for long.

A request for a Hub model that is not cached (an official variant, or a repo the operator or a visitor
named) starts its download (or joins the one running) and waits at most REQUEST_WAIT_S; after that the
visitor hears "still downloading", and the download goes on for the next request. Progress goes to the log
(logger `poolformer.explorer.downloads`) and, for the default model's background download, to the app's
status line through `note()`. Downloads under visitors' rules run one at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from poolformer import hub
from poolformer.explorer.common import ExplorerError, LoadReporter
from poolformer.weights import WeightsError

# A request waits at most this long for a download, so a stalled Hub never holds a worker for long;
# on a Space the Hub sends S12 (47 MB) in about a second, M48 (295 MB) in a few.
REQUEST_WAIT_S = 20
REPORT_EVERY_S = 1.0  # how often a waiting request's progress bar is updated
LOG_STEPS = 10  # log lines per download: one every 10 %

log = logging.getLogger(__name__)


@dataclass
class Download:
    """One attempt at fetching a repo's files; `done` is set when it succeeded or failed."""

    repo: hub.HubRepo
    rules: hub.Rules
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
            log.info("%s: %s", self.repo.ref, self.progress())


class Downloads:
    """At most one download per repo at a time, each in its own daemon thread; under rules that say
    `one_at_a_time` (visitors' models), at most one of all those."""

    def __init__(self) -> None:
        self._downloads: dict[hub.HubRepo, Download] = {}
        self._lock = threading.Lock()  # guards the table
        self._background: hub.HubRepo | None = None  # the default model fetched at start-up, shown in the status

    def start(self, repo: hub.HubRepo, rules: hub.Rules = hub.OPEN, *, background: bool = False) -> Download:
        """The running download of `repo`, or a new one (a finished attempt is never reused).

        Under `one_at_a_time` rules, a new download is refused while another one under them runs.
        """
        with self._lock:
            if background:
                self._background = repo
            current = self._downloads.get(repo)
            if current is not None and not current.done.is_set():
                return current
            if rules.one_at_a_time and (busy := self._running(rules)) is not None:
                raise ExplorerError(
                    f"another model opened from this page is downloading ({busy.repo.ref}, {busy.progress()}); "
                    "this server fetches one at a time: try again in a minute"
                )
            download = self._downloads[repo] = Download(repo, rules)
        threading.Thread(target=self._run, args=(download,), name=f"download-{repo.ref}", daemon=True).start()
        return download

    def _running(self, rules: hub.Rules) -> Download | None:
        """A running download under these rules (the caller holds the lock)."""
        return next((d for d in self._downloads.values() if d.rules == rules and not d.done.is_set()), None)

    def fetch(
        self,
        repo: hub.HubRepo,
        report: LoadReporter | None = None,
        wait_s: float = REQUEST_WAIT_S,
        rules: hub.Rules = hub.OPEN,
    ) -> None:
        """Return once the repo's files are in the cache; otherwise a one-line error within wait_s."""
        if hub.cached_files(repo, rules) is not None:
            return
        if hub.is_offline():  # no thread, no delay
            raise WeightsError(str(hub.unavailable(repo, "HF_HUB_OFFLINE is set")))
        download = self.start(repo, rules)
        deadline = time.monotonic() + wait_s
        while not download.done.wait(timeout=max(0.0, min(REPORT_EVERY_S, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                raise ExplorerError(
                    f"{repo.title} {repo.verb} still downloading from the Hub "
                    f"({download.progress()}); try again in a minute, or pick another model meanwhile"
                )
            if report is not None:
                report(f"Downloading {repo.title}: {download.progress()}…")
        if download.error is not None:
            raise WeightsError(str(download.error))

    def note(self, *, landed: bool = False) -> str:
        """One line on the start-up download of the default model while it runs or after it failed;
        with `landed`, also once it has succeeded. '' when there is nothing to say."""
        with self._lock:
            repo = self._background
            download = self._downloads.get(repo) if repo else None
        if download is None:
            return ""
        name = f"official PoolFormer-{repo.variant.upper()}" if repo.variant else repo.ref
        if not download.done.is_set():
            return f"Downloading the {name} weights in the background: {download.progress()}. They become the default when done."
        if download.error is not None:
            return f"The {name} weights could not be downloaded ({download.error.reason}), so the bundled model stays the default."
        return f"The {name} weights have been downloaded: the default model from your next page load." if landed else ""

    def background_running(self) -> bool:
        with self._lock:
            download = self._downloads.get(self._background) if self._background else None
        return download is not None and not download.done.is_set()

    def _run(self, download: Download) -> None:
        repo = download.repo.ref
        log.info("%s: downloading from the Hub", repo)
        try:
            hub.download(download.repo, progress=download.update, rules=download.rules)
        except hub.HubError as error:
            download.error = error
            log.warning("%s: download failed: %s", repo, error)
        except Exception as error:  # a bug must not leave waiting requests hanging
            download.error = hub.unavailable(download.repo, f"the download crashed ({error!r})")
            log.exception("%s: download crashed", repo)
        else:
            log.info("%s: downloaded into the Hugging Face cache", repo)
        finally:
            download.done.set()


DOWNLOADS = Downloads()
