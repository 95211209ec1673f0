"""The official weights on the Hugging Face Hub: find them in the local cache, or download them.

Every failure becomes a HubError whose text is one line: what went wrong and what to do. The first
request to the Hub is one quick HEAD without retries, so an unreachable, silent or failing Hub is
reported within PROBE_TIMEOUT_S; huggingface_hub on its own retries with back-off for a minute or more.
A download that breaks off leaves nothing in the cache: huggingface_hub writes to a temporary file and
moves it into place only once it is complete, so the next attempt starts clean.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from huggingface_hub import constants as hub_constants
from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
from huggingface_hub.utils import tqdm as hub_progress_bar

from poolformer.model import VARIANTS, Variant

CONFIG_FILE = "config.json"
# The Hub repos hold transformers-format weights; s24 and s36 publish only the .bin.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PROBE_TIMEOUT_S = 5  # at most this long for the first answer (or HF_HUB_ETAG_TIMEOUT, if lower)

Progress = Callable[[int, int | None], None]  # (bytes received, total bytes or None)


class HubError(ValueError):
    """Official weights are neither cached nor downloadable; str is one line, `reason` its short core."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_offline() -> bool:
    """HF_HUB_OFFLINE is set (huggingface_hub reads it once, at import)."""
    return bool(hub_constants.HF_HUB_OFFLINE)


def cache_dirs() -> list[str]:
    """HF_HOME (token, settings) and the hub cache, which may lie elsewhere: what a server must never serve."""
    return [hub_constants.HF_HOME, hub_constants.HF_HUB_CACHE]


def cached_files(variant: Variant) -> tuple[Path, Path] | None:
    """(config.json, weights file) from the local HF cache, or None when either is missing. No network."""
    config = try_to_load_from_cache(variant.hub_repo, CONFIG_FILE)
    for name in WEIGHT_FILES:
        weights = try_to_load_from_cache(variant.hub_repo, name)
        if isinstance(config, str) and isinstance(weights, str):
            return Path(config), Path(weights)
    return None


def hub_weights_cached(variant: str) -> bool:
    """Are the official weights of `variant` ("s12" ... "m48") in the local HF cache? Never touches the network."""
    return variant in VARIANTS and cached_files(VARIANTS[variant]) is not None


def download(variant: Variant, progress: Progress | None = None) -> tuple[Path, Path]:
    """Fetch config.json and the weights into the HF cache; `progress` replaces the console progress bar."""
    if is_offline():
        raise unavailable(variant, "HF_HUB_OFFLINE is set")
    weights_name = _pick_weights_file(variant)
    config = _fetch(variant, CONFIG_FILE)
    weights = _fetch(variant, weights_name, _reporting_bar(progress) if progress else None)
    return config, weights


def _fetch(variant: Variant, name: str, bar: type[hub_progress_bar] | None = None) -> Path:
    """One file into the cache (or found there); any failure names the file."""
    try:
        return Path(hf_hub_download(variant.hub_repo, name, tqdm_class=bar))
    except Exception as error:  # network, HTTP, disk: huggingface_hub raises many types
        reason = f"downloading {name} failed ({_first_line(error)}); nothing partial was kept"
        raise unavailable(variant, reason, retry=True) from None


def _pick_weights_file(variant: Variant) -> str:
    """One quick HEAD, no retries: it picks the file and fails fast when the Hub can't serve it."""
    preferred, fallback = WEIGHT_FILES
    timeout = min(PROBE_TIMEOUT_S, hub_constants.HF_HUB_ETAG_TIMEOUT)
    try:
        get_hf_file_metadata(hf_hub_url(variant.hub_repo, preferred), timeout=timeout)
        return preferred
    except EntryNotFoundError:
        return fallback
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "error"
        raise unavailable(variant, f"the Hub answered HTTP {status}", retry=True) from None
    except Exception as error:  # connection errors come from the HTTP client huggingface_hub bundles
        if "timeout" in type(error).__name__.lower():
            raise unavailable(variant, f"the Hub did not answer within {timeout} s", retry=True) from None
        raise unavailable(variant, f"the Hub can't be reached ({_first_line(error)})", retry=True) from None


def unavailable(variant: Variant, reason: str, *, retry: bool = False) -> HubError:
    """The one-line error for weights that are not cached and could not be fetched, with what to do."""
    fetch = "try again in a while" if retry else "run once with network access"
    return HubError(
        f"the official {variant.name} weights ({variant.hub_repo}) are not in the local Hugging Face cache "
        f"and {reason}; {fetch}, or `hf download {variant.hub_repo}`, or use a bundled model (CLI: --weights PATH to a local checkpoint)",
        reason,
    )


def damaged(variant: Variant, cached: Path, problem: str) -> str:
    """The one-line error for a cached file that can't be read: name the real file and the fix."""
    blob = cached.resolve()
    return (
        f"the cached file {blob} ({variant.hub_repo} {cached.name}) can't be used ({problem}); delete it "
        f"(it is downloaded again on next use), or check the cache with `hf cache verify {variant.hub_repo}`"
    )


def _reporting_bar(progress: Progress) -> type[hub_progress_bar]:
    """A silent progress-bar class for hf_hub_download that hands each update to `progress`."""

    class ReportingBar(hub_progress_bar):
        def __init__(self, *args, **kwargs) -> None:
            kwargs["disable"] = True  # no console bar; a disabled tqdm stops counting, so count here
            super().__init__(*args, **kwargs)
            self.received = kwargs.get("initial", 0)
            self.expected = kwargs.get("total")

        def update(self, n: float | None = 1) -> bool | None:
            self.received += int(n or 0)
            progress(self.received, self.expected)
            return super().update(n)

    return ReportingBar


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
