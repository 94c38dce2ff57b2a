"""Gaze-prompted segmentation: segment the object a person looks at (GazeSAM on ONNX Runtime
and OpenVINO).

Modules, one job each: ``face`` (face detection), ``gaze`` (gaze ray), ``detect`` (object
boxes), ``depth`` (optional nearness map), ``geometry`` (rays and boxes), ``filters``
(One-Euro, hold), ``select`` (which box and mask), ``pipeline`` (:class:`GazePipeline`,
:func:`annotate`), ``factory`` (:func:`build_pipeline`), ``models`` (auxiliary model
registry), ``io.video`` (frames in, results out). Importing this package loads nothing heavy.
"""
