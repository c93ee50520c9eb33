"""Review: the queue of flagged clips, most suspicious first (or sorted and searched as the curator likes). For
each clip: the video with its sound, the sound alone, its spectrogram and frames, the model's verdicts in plain
words (for a long clip, also where along it the sound fits the picture, and any one window played alone) and the
nearest clips, or the whole queue as a grid of thumbnails (auditor.ui.grid) for batch decisions; one click or key
records a decision (with the curator's name, the run, a note and
a sound-mismatch mark) and the next clip follows; undo takes it back. The address bar links to the clip."""

import streamlit as st

from auditor import review_queue
from auditor.errors import UserError
from auditor.flags import FLAG_THRESHOLD, FLAGGED_KINDS
from auditor.reviews import MISMATCH_KINDS
from auditor.run_folder import read_config
from auditor.text import md_literal, plural
from auditor.ui import compact, figures, grid, loaders, review, state, widgets, windows

SORT_KEY = "review_sort"
MISMATCH_TEXT = {"dubbed_or_music": "dubbed / music", "off_screen": "off-screen", "swapped": "swapped",
                 "silent": "silent", "other": "other"}

st.title("Review")
compact.compact_review_layout()
data, run = state.require_scored_run()
table = loaders.scored_clips(data, run)
run_id = loaders.run_id(run)
ss = st.session_state
all_clips = set(table["clip"])
review.open_linked_clip(all_clips)

explicit = state.review_selection(data)
if explicit:
    with st.container(horizontal=True, vertical_alignment="center"):
        st.info(f"Reviewing the {plural(len(explicit), 'clip')} selected on Explore or Classes.",
                icon=":material/filter_alt:")
        if st.button("Back to all flagged clips"):
            state.leave_selection()
            st.rerun()

classes_all = sorted(table["given_label"].unique().tolist())
state.bind_to_url(SORT_KEY, "sort", "suspicious", parse=state.one_of(review_queue.SORTS))
state.bind_to_url(review.SEARCH_KEY, "q", "")
state.bind_to_url("review_kinds", "kind", list(FLAGGED_KINDS),  # these four: in the Filters popover
                  parse=lambda v: [k for k in v if k in review_queue.KIND_TEXT], hidden=True)
state.bind_to_url("review_classes", "class", [], parse=lambda v: [c for c in v if c in classes_all], hidden=True)
state.bind_to_url("review_threshold", "min", float(FLAG_THRESHOLD), parse=lambda v: min(1.0, max(0.0, float(v))),
                  hidden=True)
state.bind_to_url("review_undecided", "undecided", True, parse=lambda v: v != "False", hidden=True)
f1, f2, f3, f4 = st.columns([4, 4, 2, 2], vertical_alignment="bottom")
sort = f1.selectbox("Order", list(review_queue.SORTS), key=SORT_KEY,
                    format_func=lambda k: review_queue.SORTS[k][0])
search = f2.text_input("Search", key=review.SEARCH_KEY, placeholder="clip or label",
                       help="Clips whose name, given or suggested label contains this text.")
with f3.popover("Filters", icon=":material/tune:", width="stretch"):
    kinds = st.pills("Flag kind", [*FLAGGED_KINDS, "clean"], selection_mode="multi",
                     format_func=review_queue.KIND_TEXT.get, key="review_kinds", disabled=bool(explicit))
    classes = st.multiselect("Class (given label)", classes_all, key="review_classes", disabled=bool(explicit),
                             placeholder="All classes")
    threshold = st.slider("Minimum score", 0.0, 1.0, step=0.05, key="review_threshold", disabled=bool(explicit),
                          help="Show clips whose higher score is at least this.")
    unreviewed = st.toggle("Not yet decided only", key="review_undecided",
                           help="Skipped clips stay in the queue, at its end.")
with f4:
    view = grid.view()
state.write_url()
queue = review_queue.review_queue(table, kinds=kinds or None, classes=classes, threshold=threshold,
                                  unreviewed_only=unreviewed, clips=explicit, sort=sort, search=search)
flagged = table["flag_kind"].isin(FLAGGED_KINDS)
decided = review_queue.is_decided(table["review_status"])
left = int((~review_queue.is_decided(queue["review_status"])).sum())
shown_kinds = ", ".join(review_queue.KIND_TEXT[k] for k in kinds) if kinds else "every kind"
filters = "your selection" if explicit else \
    f"{shown_kinds} · score ≥ {threshold:.2f}" + (f" · {len(classes)} classes" if classes else "")
st.caption(f"**{left:,}** left to decide in this queue of {len(queue):,} ({filters}) · flagged clips decided: "
           f"**{int((flagged & decided).sum()):,} of {int(flagged.sum()):,}** (a skip is not a decision)")

if view == "grid":
    grid.show(data, run_id, queue)
    st.stop()

conflict = ss.get(review.REVIEW_CONFLICT_KEY)
queue_clips = queue["clip"].tolist()
current = review.current_clip(queue_clips, all_clips, searching=bool(search.strip()))
if current is None:
    st.success("Nothing left to review with these filters.", icon=":material/task_alt:")
    st.stop()
row = table[table["clip"] == current].iloc[0].to_dict()
latest = review.show_clip(data, current, queue_clips)
review.link_to(current)

st.markdown(f"### {md_literal(current)}")
where = f"Clip {queue_clips.index(current) + 1:,} of {len(queue_clips):,} in the queue" \
    if current in queue_clips else "Not in this queue"
last = f" · {review_queue.latest_text(latest['decision'])} by {md_literal(latest['curator'])} " \
       f"({md_literal(latest['timestamp'][:16].replace('T', ' '))} UTC)" if latest else ""
st.caption(f"{where} · status: {row['review_status']}{last} · the address bar links to this clip")

if conflict:
    theirs = conflict["theirs"]
    final = f" (label {md_literal(theirs['final_label'])})" if theirs.get("final_label") else ""
    when = "Before you" if conflict.get("already") else "While you were looking at this clip,"
    st.warning(f"{when} {md_literal(theirs.get('curator', '?'))} recorded "
               f"**{theirs.get('decision', '?')}**{final} at {md_literal(theirs.get('timestamp', '?'))}. "
               f"Your decision (**{conflict['decision']}**) was not recorded.", icon=":material/group:")
    with st.container(horizontal=True):
        st.button("Keep theirs", on_click=review.keep_theirs)
        st.button("Record mine", type="primary", on_click=review.record_mine, args=(data, run_id))

clip_windows = windows.clip_windows_of(run, current, row["given_label"])
media_col, info_col = st.columns([5, 6], gap="medium")
with media_col, st.container(key=compact.MEDIA_KEY, gap="small"):
    try:
        path = review_queue.clip_path(data, current)
    except ValueError as err:
        widgets.show_error("The clip file cannot be shown.", err)
        path = None
    if path is not None:
        try:
            video, mime = loaders.playable_video(data, path)
            st.video(str(video), format=mime, **windows.play_times(clip_windows))
        except UserError as err:
            widgets.show_error("This clip cannot be played in the browser; its frames and sound are below.", err)
        try:
            media = loaders.clip_media(path)
        except Exception as err:  # a file the decoder rejects: show why, keep the review going
            widgets.show_error("The clip could not be decoded for the frame strip and spectrogram.", err)
            media = None
        if media is not None:
            start = media["sound_start_s"]
            part = f" (the middle {loaders.REVIEW_SOUND_SECONDS:.0f} s, from {start:.1f} s)" if start > 0 else ""
            st.caption(f"Sound alone{part}")
            st.audio(media["wav"], format="audio/wav")
            st.image(figures.frame_strip(media["frames"]), width="stretch",
                     caption=f"{len(media['frames'])} frames, evenly spaced")
            st.plotly_chart(figures.spectrogram_figure(media["mel"], start_s=start, height=130),
                            config={"displayModeBar": False}, key="spectrogram")

with info_col:
    conf = row.get("suggested_confidence")
    conf_text = "" if conf is None or conf != conf else f" · confidence {conf:.0%}"
    st.markdown(f"**Given label** {md_literal(row['given_label'])}  \n"
                f"**Suggested label** {md_literal(row.get('suggested_label') or '–')}{conf_text}  \n"
                f"**Sound alone suggests** {md_literal(row.get('audio_pred') or '–')} · "
                f"**picture alone** {md_literal(row.get('visual_pred') or '–')}")
    lines = review_queue.explain(row)  # each sentence states its score
    st.markdown(lines["label"] + (f"  \n{lines['mismatch']}" if lines["mismatch"] else ""))

    curator = ss.get(state.CURATOR_KEY, "").strip()
    off = not curator
    if off:
        st.warning("Enter your name as curator in the sidebar to record decisions.", icon=":material/badge:")
    args = (data, run_id, row)
    keys = review.SHORTCUTS
    mine = review.my_last_decisions(data)
    primary = review_queue.primary_action(row)
    kind = {decision: "primary" if decision == primary else "secondary" for decision in ("accept", "keep", "exclude")}
    with st.container(horizontal=True):
        st.button("Accept suggestion", type=kind["accept"], icon=":material/check:", on_click=review.record_decision,
                  args=(*args, "accept"), disabled=off or not row.get("suggested_label"),
                  help="Take the suggested label", shortcut=keys["accept"])
        st.button("Keep given label", type=kind["keep"], icon=":material/done_all:", on_click=review.record_decision,
                  args=(*args, "keep"), disabled=off, shortcut=keys["keep"])
        st.button("Mismatched / exclude", type=kind["exclude"], icon=":material/block:",
                  on_click=review.record_decision, args=(*args, "exclude"), disabled=off,
                  help="Leave this clip out of the data set", shortcut=keys["exclude"])
        st.button("Skip", icon=":material/skip_next:", on_click=review.record_decision, args=(*args, "skip"),
                  disabled=off, help="Decide later: the clip goes to the end of the queue", shortcut=keys["skip"])
    all_classes = sorted(set((read_config(run) or {}).get("classes") or table["given_label"].unique()))
    relabel_col, note_col = st.columns(2, gap="small")
    relabel_col.selectbox("Relabel as (recorded when chosen)", all_classes, index=None, key=review.RELABEL_KEY,
                          placeholder="Choose a class… (r, type, Enter)", disabled=off,
                          on_change=review.record_decision, args=(*args, "relabel", review.RELABEL_KEY))
    note_col.text_input("Note (goes with the decision)", key=review.NOTE_KEY, placeholder="optional")
    st.pills("Sound does not belong (goes with the decision)", MISMATCH_KINDS, key=review.MISMATCH_KEY,
             format_func=MISMATCH_TEXT.get,
             help="Mark the sound as not belonging to the picture together with a label decision: both "
                  "problems of one clip in one decision (the export gets a mismatch column).")
    with st.container(horizontal=True):
        st.button("Previous", icon=":material/arrow_back:", on_click=review.step, args=(-1,),
                  shortcut=keys["previous"])
        st.button("Next", icon=":material/arrow_forward:", on_click=review.step, args=(1,), shortcut=keys["next"])
        st.button("Undo", icon=":material/undo:", on_click=review.undo, args=(data, run_id),
                  disabled=off or not mine, shortcut=keys["undo"],
                  help="Take back your last decision (also after a reload)")
    st.caption(review.KEYS_HELP)
    review.install_shortcut_keys()
    if clip_windows is not None:
        windows.show(clip_windows)

    st.markdown("**Nearest clips** (fused embedding): what similar clips are labelled")
    try:
        embeddings = loaders.embedding_matrix(run)
        near = review_queue.nearest_neighbours(*embeddings, current, k=review.NEIGHBOURS)
    except (OSError, ValueError, UserError) as err:
        widgets.show_error("Neighbours unavailable.", err)
        embeddings, near = None, None
    review.prefetch_next(data, queue_clips, current, embeddings)
    if near is not None and not near.empty:
        near = near.merge(table[["clip", "given_label", "suggested_label", "review_status"]], on="clip", how="left")
        for start in range(0, len(near), 3):
            for col, item in zip(st.columns(3), near.iloc[start:start + 3].to_dict("records"), strict=False):
                with col:
                    try:
                        image = loaders.thumbnail(data, review_queue.clip_path(data, item["clip"]))
                    except ValueError:
                        image = None
                    if image is not None:
                        st.image(image, width="stretch")
                    st.caption(f"{md_literal(item['given_label'])} → {md_literal(item['suggested_label'])} · "
                               f"similarity {item['similarity']:.2f}")
                    st.button("Open", key=f"near_{start}_{item['clip']}", on_click=review.open_clip,
                              args=(item["clip"],), icon=":material/open_in_new:", width="stretch",
                              help=item["clip"])

if mine:
    with st.expander(f"Your last decisions ({len(mine)})"):
        for entry in mine:
            c1, c2 = st.columns([5, 1], vertical_alignment="center")
            c1.markdown(f"{review_queue.STATUS_TEXT.get(entry['decision'], entry['decision'])}: "
                        f"{md_literal(entry['clip'])}")
            c2.button("Undo", key=f"undo_{entry['id']}", on_click=review.undo, args=(data, run_id, entry["id"]),
                      disabled=off)

with st.expander(f"Queue ({len(queue_clips):,} clips) and batch actions"):
    review.batch_buttons(data, run_id, queue, "in this queue", "queue_batch")
    widgets.show_table(queue[widgets.CLIP_TABLE], column_config=widgets.TABLE_COLUMNS, key=review.QUEUE_TABLE_KEY,
                       on_select=review.jump_to_queue_row, selection_mode="single-row", height=300)
