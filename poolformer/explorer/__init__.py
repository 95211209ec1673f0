"""What the Explorer app computes, one module per concern; nothing here imports gradio.

- `common`: device, photo decoding, model input, top-k;  `catalogue`: which models exist, the default;
- `cache`: the shared read-only model cache;  one module per view: `prediction`, `ablation`, `comparison`, `mixer`,
  `metaformer` (the architecture diagram's data);  `paper`: the MetaFormer papers' figures we cite.

Every view returns plain data (numpy arrays, dicts, dataclasses); `visualize/` draws, `app.py` wires.
"""

from poolformer.explorer.ablation import POOL_SIZES, TRAINED_POOL_SIZE, Ablation, ablate, pool_size
from poolformer.explorer.cache import MODELS, ModelCache, load, status_line
from poolformer.explorer.catalogue import (
    ModelChoice,
    bundled_choice,
    checkpoint_dir,
    choice_label,
    default_choice,
    describe,
    find_choice,
    model_choices,
    scratch_twin,
)
from poolformer.explorer.common import ALL_STAGES, DEVICE, PAPER_S12_TOP1, ExplorerError, LoadReporter
from poolformer.explorer.comparison import TIMED_RUNS, Comparison, compare
from poolformer.explorer.metaformer import Architecture, MeasuredRun, StageTrace, measured_mixer_runs, trace
from poolformer.explorer.mixer import MixerFilter, Token, filter_photo, inspect_token
from poolformer.explorer.prediction import Prediction, StageView, predict

__all__ = [
    "ALL_STAGES", "DEVICE", "MODELS", "PAPER_S12_TOP1", "POOL_SIZES", "TIMED_RUNS", "TRAINED_POOL_SIZE",
    "Ablation", "Architecture", "Comparison", "ExplorerError", "LoadReporter", "MeasuredRun", "MixerFilter",
    "ModelCache", "ModelChoice", "Prediction", "StageTrace", "StageView", "Token",
    "ablate", "bundled_choice", "checkpoint_dir", "choice_label", "compare", "default_choice", "describe",
    "filter_photo", "find_choice", "inspect_token", "load", "measured_mixer_runs", "model_choices", "pool_size",
    "predict", "scratch_twin", "status_line", "trace",
]
