"""Temporal consistency: how steady a result is and where it breaks (no bpy, no torch unless CLIP is used).

- ``flow``: OpenCV DIS optical flow both ways, the forward/backward occlusion mask, warping;
- ``vectors``: Blender's Vector pass as exact flow;
- ``pair_metrics``: warp error, flow-compensated PSNR and SSIM of one frame pair;
- ``clip_metrics``: CLIP frame consistency and text alignment, when a CLIP model is on disk;
- ``clips``: the frames a report reads (result, source, vectors), checked first, then streamed;
- ``measure``: one streamed pass over a result;
- ``report``: the ``report.json`` document and comparisons; ``figures``: ``report.png``; ``page``: ``report.html``;
- ``consistency``: make a folder's report; ``job_report``: what a job's request implies for its report.

Entry points: ``python -m t2vz_backend report OUT_DIR`` and the ``report`` option of every job (service/jobs.py).
"""
