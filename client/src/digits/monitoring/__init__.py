"""Label-free monitoring of a served classifier (docs/monitoring.md).

Pure numpy (scipy for the detectors' reference bounds, imported when first needed), shared by
the trainer (which writes each version's reference profile), the server (which watches every
prediction against it) and the CLI (`digits monitor`):
- `summaries`: cheap input summaries of an image (background level, ink, bounding box);
- `profile`: the reference profile of a version (predicted classes, confidence, calibration
  table, binned input summaries) and its JSON form;
- `estimate`: the CBPE estimate of accuracy without labels, with its interval;
- `detectors`: e-CUSUM drift detectors over binned signals, with a false-alarm guarantee;
- `simulation`: the vectorised clean-traffic simulation of those detectors (tests, bench).
"""
