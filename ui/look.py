"""How the page looks: the theme, the CSS (a phone layout among it) and a script in the page's head."""

from __future__ import annotations

import gradio as gr

# System fonts only: the theme's default Google Fonts can't load on an offline machine. The .set() colours pass
# WCAG AA contrast (4.5:1 for text, checked by axe-core in tests/test_browser_a11y.py): Soft's indigo-500
# labels and buttons, and its grey-400 subdued text, fall short on their backgrounds.
THEME = gr.themes.Soft(
    primary_hue="indigo",
    font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
).set(
    block_label_text_color="*primary_700",
    block_title_text_color="*primary_700",
    button_primary_background_fill="*primary_600",
    button_primary_background_fill_hover="*primary_700",
    button_primary_background_fill_hover_dark="*primary_700",
    checkbox_label_background_fill_selected="*primary_600",
    color_accent="*primary_600",
    body_text_color_subdued="*neutral_600",
    link_text_color_dark="*secondary_400",
    link_text_color_hover_dark="*secondary_300",
    link_text_color_visited_dark="*secondary_400",
    link_text_color_active_dark="*secondary_300",
)
CSS = """
.stage-heading { margin-top: 0.6rem; }
.stage-heading p { font-size: 0.95rem; }
.cam-caption p { font-size: 0.85rem; }
/* Text never needs a scroll box (Gradio gives each Markdown one, which axe reports while the block grows to its
   new text); a wide table scrolls in its own, which the head script makes reachable by keyboard. */
.block:has(> [data-testid="markdown-wrapper"]) { overflow: visible !important; }
#cam-summary td:not(:first-child), #cam-summary th:not(:first-child) { white-space: nowrap; }
#zoo-table table { display: block; overflow-x: auto; }  /* a phone scrolls the zoo's wide tables, not squeezes them */
#zoo-table :is(td, th) { min-width: 6.5rem; }
#zoo-table :is(td, th), #measured-table :is(td, th) { overflow-wrap: normal; word-break: normal; }  /* whole words */
footer { display: none !important; }
#copy-link { position: fixed; right: 1rem; bottom: 1rem; z-index: 50; box-shadow: var(--shadow-drop-lg); }
#architecture svg { display: block; margin: 0 auto; }
#architecture:fullscreen { background: var(--body-background-fill); overflow: auto; padding: 1rem; }
#architecture:fullscreen svg { width: 100%; height: 100%; }
#tour-steps .stepper-wrapper { padding: 0 2.5rem 0.6rem; }  /* room for the last step's label */
@media (max-width: 640px) {  /* a phone: one column, and the wide figures at their own size, swiped sideways */
  .row:not(#tour-steps .row) > .block, .row:not(#tour-steps .row) > .column { min-width: 100% !important; }
  :is(#stage-1, #stage-2, #stage-3, #stage-4, #cam-comparison, #sanity-maps, #ablation-chart, #zoo-picture) .image-container {
    display: block !important; overflow-x: auto;
  }
  :is(#stage-1, #stage-2, #stage-3, #stage-4, #cam-comparison, #sanity-maps, #ablation-chart, #zoo-picture) :is(.image-container > button, .image-frame) {
    display: block; width: max-content; max-width: none; height: auto;
  }
  :is(#stage-1, #stage-2, #stage-3, #stage-4, #cam-comparison, #sanity-maps, #ablation-chart, #zoo-picture) .image-frame img {
    width: auto !important; height: auto !important; max-width: none !important; max-height: none !important;
  }
  #cam-summary td, #cam-summary th { white-space: normal !important; }
  .prose table { display: block; overflow-x: auto; }
  .prose :is(td, th) { overflow-wrap: normal; word-break: normal; }  /* whole words; the table scrolls instead */
  /* The models table scrolls in its block (the grid's own viewport has role="none", so it can't take the focus). */
  #compare-table { overflow-x: auto !important; }
  #compare-table :is(.table-wrap, .virtual-table-viewport) { overflow: visible !important; }
  #compare-table :is(table, .virtual-table-viewport) { min-width: 620px; }
  #architecture { overflow-x: auto; }
  #architecture svg { min-width: 720px; }
  #compare-maps .grid-container { --grid-cols: 3 !important; }  /* four 100 px tiles and their gaps overflow 390 px */
}
"""
# Two repairs as Gradio renders: an empty output carries an aria-label on a plain <div>, which ARIA forbids (as
# role="img" the label is allowed and says what is there, "Empty value"); and a box that may scroll sideways (a
# wide table, the diagram on a phone) takes the keyboard focus, so it can be scrolled without a mouse.
SCROLL_BOXES = ".prose table, #compare-table, #architecture"
HEAD = """<script>
new MutationObserver(() => {
  document.querySelectorAll(".empty[aria-label]:not([role])").forEach((empty) => empty.setAttribute("role", "img"));
  document.querySelectorAll("SCROLL_BOXES").forEach((box) => { if (!box.hasAttribute("tabindex")) box.tabIndex = 0; });
}).observe(document.documentElement, {childList: true, subtree: true});
</script>""".replace("SCROLL_BOXES", SCROLL_BOXES)
