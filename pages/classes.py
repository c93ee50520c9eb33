"""Classes: per-class flag shares and the model's estimated rates (class_report.csv), and the confusion of given
and suggested labels as a tile map; a click on a tile (Shift+click or the box tool for several) lists their clips,
sends them to Review or records one batch decision for each of them."""

import streamlit as st

from auditor import class_view
from auditor.text import plural
from auditor.ui import figures, loaders, review, state, widgets

st.title("Classes")
data, run = state.require_scored_run()
points = loaders.scored_clips(data, run)

st.subheader("Per class")
table = class_view.class_table(points, loaders.class_report(run))
percent = {c: st.column_config.NumberColumn(class_view.CLASS_COLUMNS[c], format="percent")
           for c in ("flagged_wrong_label", "flagged_mismatch", "estimated_noise_rate", "estimated_mismatch_rate")}
widgets.show_table(table, column_config={**{c: st.column_config.TextColumn(t) for c, t in
                                            class_view.CLASS_COLUMNS.items() if c not in percent}, **percent},
                   height=min(420, 38 + 35 * len(table)))

st.subheader("Given label against suggested label")
st.caption("A tile counts the clips with that given label (row) and suggested label (column): the diagonal "
           "agrees, the rest are suggested relabels. Click a tile to list its clips (Shift+click adds a tile; the "
           "box tool of the chart's toolbar selects several).")
cells = class_view.confusion_cells(points)
classes = sorted(set(cells["given_label"]) | set(cells["suggested_label"]))
event = st.plotly_chart(figures.confusion_figure(cells, classes), key="confusion", on_select="rerun",
                        selection_mode=("points", "box"), config={"displaylogo": False})
picked = cells.iloc[[i for i in event.selection.point_indices if i < len(cells)]] if event else cells.iloc[:0]
if picked.empty:
    st.stop()
clips = [c for g, s in zip(picked["given_label"], picked["suggested_label"], strict=True)
         for c in class_view.cell_clips(points, g, s)]
with st.container(horizontal=True, vertical_alignment="center"):
    st.markdown(f"**{plural(len(clips), 'clip')}** in {plural(len(picked), 'tile')}")
    if st.button("Review these", type="primary", icon=":material/fact_check:"):
        state.send_to_review(data, clips)
chosen = points[points["clip"].isin(clips)]
review.batch_buttons(data, loaders.run_id(run), chosen, "in the selected tiles", "classes_batch")
widgets.show_table(chosen[widgets.CLIP_TABLE], column_config=widgets.TABLE_COLUMNS,
                   height=min(400, 38 + 35 * len(chosen)))
