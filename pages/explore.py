"""Explore: the audio and visual UMAP maps side by side and the fused map below, coloured by flag kind, label
or review status; a point under the mouse shows its clip's frame (auditor.ui.map_thumbs). A box or lasso
selection on any map highlights the same clips on all maps, lists them, and can send them to the Review page."""

from functools import partial

import numpy as np
import streamlit as st

from auditor import explore_maps
from auditor.ui import figures, loaders, map_thumbs, review, selection, state, widgets

st.title("Explore")
data, run = state.require_scored_run()
table = loaders.points(data, run)

c1, c2 = st.columns([1, 1], vertical_alignment="bottom")
colour_by = c1.segmented_control("Colour by", list(explore_maps.COLOUR_BY), default="Flag kind",
                                 key="explore_colour") or "Flag kind"
classes = sorted(table["given_label"].unique().tolist())
chosen = c2.multiselect("Classes", classes, key="explore_classes", placeholder="All classes",
                        help="Show only clips with these given labels.")
if chosen:
    table = table[table["given_label"].isin(chosen)].reset_index(drop=True)
if table.empty:
    st.info("No scored clips to show.")
    st.stop()

plan = explore_maps.colour_plan(table, colour_by)
clips = table["clip"].to_numpy()
selection.remember_maps(plan, clips)
customdata = explore_maps.hover_customdata(table)
selected = selection.selected_clips()
highlight = np.flatnonzero(np.isin(clips, selected)) if selected else None
if plan.mode == "index":
    st.caption(f"{len(plan.names):,} colours: too many for a legend. Hover a point for its labels, or filter "
               "the classes above.")


def draw(modality: str, title: str, height: int) -> None:
    st.markdown(f"**{title}**")
    key = f"map_{modality}"
    st.plotly_chart(figures.map_figure(table, plan, modality, customdata, highlight, height=height), key=key,
                    on_select=partial(selection.on_map_select, key), selection_mode=("box", "lasso", "points"),
                    config={"displaylogo": False, "modeBarButtonsToRemove": ["toImage"]})


left, right = st.columns(2)
with left:
    draw("audio", "Sound (audio embedding)", 520)
with right:
    draw("visual", "Picture (visual embedding)", 520)
draw("fused", "Sound + picture (fused embedding)", 600)
map_thumbs.show(data, table, selected)

st.subheader("Selection")
if not selected:
    st.caption("Drag a box or lasso on any map to select clips; they are highlighted on all three maps and "
               "listed here.")
    st.stop()
chosen_rows = table[table["clip"].isin(selected)]
with st.container(horizontal=True, vertical_alignment="center"):
    st.markdown(f"**{len(chosen_rows):,} clips selected**")
    if st.button("Review these", type="primary", icon=":material/fact_check:"):
        state.send_to_review(data, chosen_rows["clip"].tolist())
    if st.button("Clear selection", icon=":material/close:"):
        selection.clear()
        st.rerun()
review.batch_buttons(data, loaders.run_id(run), chosen_rows, "selected on the maps", "explore_batch")
widgets.show_table(chosen_rows[widgets.CLIP_TABLE], column_config=widgets.TABLE_COLUMNS,
                   height=min(400, 38 + 35 * len(chosen_rows)))
