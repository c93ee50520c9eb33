"""Review: the queue of flagged clips, most suspicious first. For each clip: the video with its sound, the sound
alone, its spectrogram and frames, the model's verdicts in plain words and the nearest clips; one click records
a decision (with the curator's name and the run) and the next clip follows."""

import streamlit as st

from auditor import review_queue
from auditor.errors import UserError
from auditor.flags import FLAG_THRESHOLD, FLAGGED_KINDS
from auditor.run_folder import read_config
from auditor.text import md_literal
from auditor.ui import figures, loaders, review, state, widgets

st.title("Review")
data, run = state.require_scored_run()
table = loaders.scored_clips(data, run)
run_id = loaders.run_id(run)
ss = st.session_state

explicit = ss.get(state.REVIEW_CLIPS_KEY)
if explicit:
    with st.container(horizontal=True, vertical_alignment="center"):
        st.info(f"Reviewing the {len(explicit):,} clips selected on the Explore page.", icon=":material/filter_alt:")
        if st.button("Back to all flagged clips"):
            ss.pop(state.REVIEW_CLIPS_KEY, None)
            st.rerun()

f1, f2 = st.columns([3, 2], vertical_alignment="bottom")
kinds = f1.pills("Flag kind", [*FLAGGED_KINDS, "clean"], selection_mode="multi",
                 default=list(FLAGGED_KINDS), format_func=review_queue.KIND_TEXT.get,
                 key="review_kinds", disabled=bool(explicit))
classes = f2.multiselect("Class (given label)", sorted(table["given_label"].unique().tolist()),
                         key="review_classes", disabled=bool(explicit), placeholder="All classes")
f3, f4, m1, m2 = st.columns([3, 2, 2, 2], vertical_alignment="center")
threshold = f3.slider("Minimum score", 0.0, 1.0, float(FLAG_THRESHOLD), 0.05, key="review_threshold",
                      disabled=bool(explicit), help="Show clips whose higher score is at least this.")
unreviewed = f4.toggle("Not yet reviewed only", value=True, key="review_unreviewed",
                       help="Skipped clips stay in the queue, at its end.")
queue = review_queue.review_queue(table, kinds=kinds or None, classes=classes, threshold=threshold,
                                  unreviewed_only=unreviewed, clips=explicit)
flagged = table["flag_kind"].isin(FLAGGED_KINDS)
decided = ~table["review_status"].isin([review_queue.NOT_REVIEWED, review_queue.STATUS_TEXT["skip"]])
m1.metric("Remaining in this queue", f"{len(queue):,}")
m2.metric("Flagged clips reviewed", f"{int((flagged & decided).sum()):,} of {int(flagged.sum()):,}")

conflict = ss.get(review.REVIEW_CONFLICT_KEY)
if queue.empty and not conflict:
    st.success("Nothing left to review with these filters.", icon=":material/task_alt:")
    st.stop()

queue_clips = queue["clip"].tolist()
current = conflict["row"]["clip"] if conflict else ss.get(review.REVIEW_CURRENT_KEY)
if current not in queue_clips and not conflict:
    current = queue_clips[0]
row = table[table["clip"] == current].iloc[0].to_dict()
latest = review.show_clip(data, current, queue_clips)

st.divider()
st.markdown(f"### {md_literal(current)}")
where = f"Clip {queue_clips.index(current) + 1:,} of {len(queue_clips):,} in the queue" \
    if current in queue_clips else "No longer in the queue"
st.caption(f"{where} · status: {row['review_status']}")
if latest:
    st.caption(f"Latest decision: {latest['decision']} by {md_literal(latest['curator'])} "
               f"({md_literal(latest['timestamp'])})")

if conflict:
    theirs = conflict["theirs"]
    final = f" (label {md_literal(theirs['final_label'])})" if theirs.get("final_label") else ""
    st.warning(f"While you were looking at this clip, {md_literal(theirs.get('curator', '?'))} recorded "
               f"**{theirs.get('decision', '?')}**{final} at {md_literal(theirs.get('timestamp', '?'))}. "
               f"Your decision (**{conflict['decision']}**) was not recorded.", icon=":material/group:")
    with st.container(horizontal=True):
        st.button("Keep theirs", on_click=review.keep_theirs)
        st.button("Record mine", type="primary", on_click=review.record_mine, args=(data, run_id))

media_col, info_col = st.columns([5, 4], gap="large")
with media_col:
    try:
        path = review_queue.clip_path(data, current)
    except ValueError as err:
        widgets.show_error("The clip file cannot be shown.", err)
        path = None
    if path is not None:
        st.video(str(path), width=480)
        try:
            media = loaders.clip_media(path)
        except Exception as err:  # a file the decoder rejects: show why, keep the review going
            widgets.show_error("The clip could not be decoded for the frame strip and spectrogram.", err)
            media = None
        if media is not None:
            st.caption("Sound alone")
            st.audio(media["wav"], format="audio/wav")
            st.caption("Spectrogram (log-mel)")
            st.plotly_chart(figures.spectrogram_figure(media["mel"]), config={"displayModeBar": False},
                            key="spectrogram")
            st.caption(f"{len(media['frames'])} frames, evenly spaced")
            st.image(figures.frame_strip(media["frames"]), width="stretch")

with info_col:
    conf = row.get("suggested_confidence")
    conf_text = "" if conf is None or conf != conf else f" · confidence {conf:.0%}"
    st.markdown(f"**Given label** {md_literal(row['given_label'])}  \n"
                f"**Suggested label** {md_literal(row.get('suggested_label') or '–')}{conf_text}  \n"
                f"**Sound alone says** {md_literal(row.get('audio_pred') or '–')}  \n"
                f"**Picture alone says** {md_literal(row.get('visual_pred') or '–')}")
    lines = review_queue.explain(row)
    noise, mism = row.get("label_noise_score"), row.get("mismatch_score")
    if noise == noise and noise is not None:
        st.progress(float(noise), text=f"Wrong-label score {noise:.2f}")
    st.markdown(lines["label"])
    if mism == mism and mism is not None:
        st.progress(float(mism), text=f"Mismatch score {mism:.2f}")
    if lines["mismatch"]:
        st.markdown(lines["mismatch"])

    st.markdown("**Decision**")
    curator = ss.get(state.CURATOR_KEY, "").strip()
    off = not curator
    if off:
        st.warning("Enter your name as curator in the sidebar to record decisions.", icon=":material/badge:")
    args = (data, run_id, row)
    with st.container(horizontal=True):
        st.button("Accept suggestion", type="primary", icon=":material/check:", on_click=review.record_decision,
                  args=(*args, "accept"), disabled=off or not row.get("suggested_label"),
                  help="Take the suggested label")
        st.button("Keep given label", icon=":material/undo:", on_click=review.record_decision, args=(*args, "keep"),
                  disabled=off)
        st.button("Mismatched / exclude", icon=":material/block:", on_click=review.record_decision,
                  args=(*args, "exclude"), disabled=off, help="Leave this clip out of the data set")
        st.button("Skip", icon=":material/skip_next:", on_click=review.record_decision, args=(*args, "skip"),
                  disabled=off, help="Decide later: the clip goes to the end of the queue")
    all_classes = sorted(set((read_config(run) or {}).get("classes") or table["given_label"].unique()))
    r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
    r1.selectbox("Relabel as", all_classes, index=None, key=review.RELABEL_KEY, placeholder="Choose a class…")
    r2.button("Relabel", on_click=review.record_decision, args=(*args, "relabel", review.RELABEL_KEY),
              disabled=off or not ss.get(review.RELABEL_KEY), width="stretch")

    st.markdown("**Nearest clips** (fused embedding)")
    try:
        names, matrix = loaders.embedding_matrix(run)
        near = review_queue.nearest_neighbours(names, matrix, current, k=6)
    except (OSError, ValueError, UserError) as err:
        widgets.show_error("Neighbours unavailable.", err)
        near = None
    if near is not None and not near.empty:
        near = near.merge(table[["clip", "given_label", "suggested_label", "review_status"]], on="clip", how="left")
        widgets.show_table(near, column_config=widgets.TABLE_COLUMNS)

with st.expander(f"Queue ({len(queue_clips):,} clips)"):
    widgets.show_table(queue[widgets.CLIP_TABLE], column_config=widgets.TABLE_COLUMNS, key=review.QUEUE_TABLE_KEY,
                       on_select=review.jump_to_queue_row, selection_mode="single-row", height=300)
