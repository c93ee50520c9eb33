"""The app's Streamlit layer: with auditor/app.py and pages/, the only code that imports streamlit.

One module a topic; pages import them by topic (``from auditor.ui import state, figures``):

* :mod:`~auditor.ui.state`: session defaults, recent folders, the chosen data set and run, the page registry,
  the shared sidebar;
* :mod:`~auditor.ui.widgets`: error boxes, one-shot (flash) messages, read-only clip tables;
* :mod:`~auditor.ui.ingest`: the data set's decode cache as the Data page shows and fills it;
* :mod:`~auditor.ui.loaders`: cached readers of a data set's manifest, a run's outputs, reviews and clip media;
* :mod:`~auditor.ui.figures`: Plotly figures (maps, histogram, losses, spectrogram) and the frame strip;
* :mod:`~auditor.ui.features`: the Model page's features-file input and its check;
* :mod:`~auditor.ui.jobs`: the Model page's job panel (start, follow, cancel, resume a background job);
* :mod:`~auditor.ui.selection`: the Explore maps' selection, kept across reruns;
* :mod:`~auditor.ui.map_thumbs`: the Explore maps' hover frames;
* :mod:`~auditor.ui.review`: the Review page's clip on screen and its decision callbacks;
* :mod:`~auditor.ui.export`: the Export page's calls to :mod:`auditor.export`.

Nothing here computes a model quantity: the pure logic is :mod:`auditor.review_queue`,
:mod:`auditor.explore_maps`, :mod:`auditor.progress_view` and :mod:`auditor.text`. What must outlive a browser
tab (jobs, decisions) lives on disk (:mod:`auditor.jobs`, :mod:`auditor.reviews`); ``st.session_state`` only holds
per-tab choices. User data (labels, file names) is never rendered as HTML: it goes through
``st.text``/``st.dataframe``, :func:`auditor.text.md_literal` in Markdown, or :func:`auditor.text.escape_hover`
in Plotly. Importing this package does not import torch or PyAV: the two functions that decode clips import
them when called.
"""
