"""ControlNet conditions: control-map preprocessors, per-shot depth normalisation, the OpenPose rasteriser.
``depth`` and ``pose`` need only numpy (the add-on ships them).
"""
