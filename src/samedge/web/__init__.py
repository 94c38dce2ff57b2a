"""``samedge web``: a browser UI for points, boxes, box + points and segment-everything.

The package is split so that everything except :mod:`samedge.web.app` works without Gradio:

* :mod:`~samedge.web.state` — per-session prompts (immutable, with undo) and the uploaded
  image;
* :mod:`~samedge.web.cache` — the LRU cache of image embeddings keyed by image content
  hash and model, so a click only runs the decoder;
* :mod:`~samedge.web.models` — which exported models the UI may offer, and the loaded
  predictors;
* :mod:`~samedge.web.uploads` — validation of uploaded files (size, pixels, real image);
* :mod:`~samedge.web.engine` — encode / decode / render / downloads for one action;
* :mod:`~samedge.web.gaze` — the Gaze tab's pipelines, frames and latency lines;
* :mod:`~samedge.web.app` — the Gradio interface (needs ``pip install 'samedge[web]'``), with
  :mod:`~samedge.web.gaze_tab` (the Gaze tab) and :mod:`~samedge.web.ui` (shared helpers).

Importing this package imports neither Gradio nor ONNX Runtime.
"""
