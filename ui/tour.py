"""The guided tour: a short walkthrough above the tabs that opens each step's tab, for first-time visitors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr


@dataclass(frozen=True)
class TourStep:
    """One step of the guided tour: its title, what to do, and the id of the tab it opens (None: stay)."""

    title: str  # unlike the tab names: steps are role="tab" buttons too, and tests find tabs by name
    text: str
    tab: str | None


# photo → predict → stages → where it looks → what pooling does → ablation → architecture (and the zoo). A step whose
# tab id is not on the page only explains.
TOUR = [
    TourStep(
        "Photo",
        "Start with a photo: drop one into the **Photo** box on the left, or click an example under it. The bundled "
        "default model knows ten Imagenette classes (church, French horn, parachute, …): try a cathedral.",
        None,
    ),
    TourStep(
        "Top-5",
        "On the **Predict** tab press **Predict**: the five most likely classes appear, with probabilities.",
        "predict",
    ),
    TourStep(
        "Stages",
        "Below the top-5, each of the **four stages** shows where it responds on your photo (one square per token, "
        "56 × 56 of them in stage 1 down to 7 × 7 in stage 4), its most active channels, and what pooling adds to "
        "each token.",
        "predict",
    ),
    TourStep(
        "Class maps",
        "The **Where it looks** tab draws a class-activation map per stage: which parts of the photo pushed the "
        "predicted class up.",
        "where-it-looks",
    ),
    TourStep(
        "Pooling as a filter",
        "The **What pooling does** tab shows the token mixer as a filter: press **Filter the photo** to see "
        "`pool(x) − x` keep edges and texture and flatten the rest.",
        "what-pooling-does",
    ),
    TourStep(
        "Ablation",
        "In **Token-mixer ablation**, switch pooling off (identity) in some stages or widen its window to 5 or 7 "
        "(a what-if on weights trained with 3), and see how the prediction moves.",
        "ablation",
    ),
    TourStep(
        "Architecture",
        "The **MetaFormer** tab draws the whole network with your photo's tensor shapes, beside the paper's "
        "ablations and our own measurement. The **Mixer zoo** tab then puts the paper's question to your photo: "
        "every bundled model that differs only in its token mixer, side by side, with what each measured beside the "
        "paper's Table 5 and how alike their features are. **Finish** opens it. Enjoy exploring!",
        "metaformer",
    ),
]
FINISH_TAB = "mixer-zoo"  # where Finish leaves the visitor: the paper's question, asked of their photo


@dataclass
class Tour:
    """The tour's components, built above the tabs and wired to them once the tabs exist."""

    panel: gr.Accordion
    seen: gr.BrowserState
    walkthrough: gr.Walkthrough
    steps: list[tuple[gr.Step, gr.Button, gr.Button]]  # per step: the step, its Next/Finish and Skip buttons


def build() -> Tour:
    """A short walkthrough in a panel that opens by itself for a first-time visitor; `wire` it once the tabs exist."""
    # A fixed secret: the flag is not sensitive, and a returning visitor stays "seen" across server restarts.
    seen = gr.BrowserState(False, storage_key="poolformer-explorer-tour-seen", secret="poolformer-explorer-tour")
    steps = []
    with gr.Accordion(f"New here? A short tour in {len(TOUR)} steps", open=False, elem_id="tour") as panel:
        with gr.Walkthrough(selected=0, elem_id="tour-steps") as walkthrough:
            for index, tour_step in enumerate(TOUR):
                last = index == len(TOUR) - 1
                with gr.Step(tour_step.title, id=index, elem_id=f"tour-step-{index + 1}") as step:
                    gr.Markdown(tour_step.text)
                    with gr.Row():
                        advance = gr.Button("Finish" if last else "Next →", variant="primary", size="sm", scale=0,
                                            min_width=110, elem_id=f"tour-next-{index + 1}")
                        skip = gr.Button("Skip the tour", size="sm", scale=0, min_width=110,
                                         elem_id=f"tour-skip-{index + 1}", visible=not last)
                steps.append((step, advance, skip))
    return Tour(panel, seen, walkthrough, steps)


def wire(tour: Tour, page: gr.Blocks, tabs: gr.Tabs) -> None:
    """Next moves the tour on and opens the next step's tab (when the layout has it); Finish or Skip closes it for
    good; a page load opens the panel for a visitor who has not seen it."""
    tab_ids = {tab.id for tab in tabs.children if isinstance(tab, gr.Tab)}

    def tab_of(index: int) -> str | None:
        return TOUR[index].tab if TOUR[index].tab in tab_ids else None

    def close() -> tuple[gr.Accordion, bool]:
        return gr.Accordion(open=False), True

    quiet: dict[str, Any] = {"queue": False, "api_visibility": "private"}
    for index, (step, advance, skip) in enumerate(tour.steps):
        if (target := tab_of(index)) is not None:
            step.select(lambda target=target: gr.Tabs(selected=target), outputs=tabs, **quiet)
        if index == len(tour.steps) - 1:
            advance.click(
                lambda: (*close(), gr.Tabs(selected=FINISH_TAB) if FINISH_TAB in tab_ids else gr.skip()),
                outputs=[tour.panel, tour.seen, tabs],
                **quiet,
            )
            continue
        following = tab_of(index + 1)
        advance.click(
            lambda index=index, following=following: (
                gr.Walkthrough(selected=index + 1),
                gr.Tabs(selected=following) if following else gr.skip(),
            ),
            outputs=[tour.walkthrough, tabs],
            **quiet,
        )
        skip.click(close, outputs=[tour.panel, tour.seen], **quiet)
    page.load(lambda seen: gr.Accordion(open=not seen), [tour.seen], [tour.panel], queue=False, api_visibility="private")
