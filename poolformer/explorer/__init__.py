"""What the Explorer app computes, one module per concern; nothing here imports gradio.

- `common`: device, photo decoding, model input, top-k;  `catalogue`: which models exist (official, bundled,
  the operator's and visitors' own), the default;
- `cache`: the shared read-only model cache;  `downloads`: Hub weights fetched in the background;
- one module per view: `prediction`, `ablation`, `comparison`, `mixer`, `explanation` with its evidence `sanity`
  and `faithfulness`, `metaformer` (the architecture diagram's data), `zoo` (every bundled token mixer on one photo);
- `measured`: what the bundled checkpoints record (accuracy over seeds, CKA);  `paper`: the papers' figures we cite.

Every view returns plain data (numpy arrays, dicts, dataclasses); `visualize/` draws, `app.py` wires.
"""

from poolformer.explorer.ablation import POOL_SIZES, TRAINED_POOL_SIZE, Ablation, ablate, pool_size
from poolformer.explorer.cache import MODELS, ModelCache, load, loaded_model, loaded_status, status_line
from poolformer.explorer.catalogue import (
    ModelChoice,
    add_models,
    bundled_choice,
    checkpoint_dir,
    choice_label,
    default_choice,
    describe,
    fetch_official_default,
    find_choice,
    model_choices,
    scratch_twin,
    visitor_models_allowed,
    visitor_rules,
    zoo_choices,
)
from poolformer.explorer.common import ALL_STAGES, DEVICE, PAPER_S12_TOP1, ExplorerError, LoadReporter, shown
from poolformer.explorer.comparison import TIMED_RUNS, Comparison, compare
from poolformer.explorer.downloads import DOWNLOADS
from poolformer.explorer.explanation import TOP1, Explanation, ModelMaps, explain
from poolformer.explorer.faithfulness import Curve, Faithfulness, faithfulness
from poolformer.explorer.measured import (
    FeatureSimilarity,
    MeasuredRun,
    feature_similarity,
    measured_mixer_runs,
    measured_run,
)
from poolformer.explorer.metaformer import Architecture, StageTrace, trace
from poolformer.explorer.mixer import MixerFilter, Token, filter_photo, inspect_token
from poolformer.explorer.prediction import Prediction, StageView, predict
from poolformer.explorer.sanity import RandomisedMaps, SanityCheck, sanity_check
from poolformer.explorer.zoo import CAM_STAGES, Zoo, ZooMember, mixer_zoo, zoo_class_names, zoo_similarity

__all__ = [
    "ALL_STAGES", "CAM_STAGES", "DEVICE", "DOWNLOADS", "MODELS", "PAPER_S12_TOP1", "POOL_SIZES", "TIMED_RUNS", "TOP1",
    "TRAINED_POOL_SIZE", "Ablation", "Architecture", "Comparison", "Curve", "Explanation", "ExplorerError",
    "Faithfulness", "FeatureSimilarity", "LoadReporter", "MeasuredRun", "MixerFilter", "ModelCache", "ModelChoice",
    "ModelMaps", "Prediction", "RandomisedMaps", "SanityCheck", "StageTrace", "StageView", "Token", "Zoo", "ZooMember",
    "ablate", "add_models", "bundled_choice", "checkpoint_dir", "choice_label", "compare", "default_choice", "describe",
    "explain", "faithfulness", "feature_similarity", "fetch_official_default", "filter_photo", "find_choice",
    "inspect_token", "load", "loaded_model", "loaded_status", "measured_mixer_runs", "measured_run", "mixer_zoo",
    "model_choices", "pool_size", "predict", "sanity_check", "scratch_twin", "shown", "status_line", "trace",
    "visitor_models_allowed", "visitor_rules", "zoo_choices", "zoo_class_names", "zoo_similarity",
]
