"""Pictures and exports: 3D skeleton animations, 2D overlays on the 9 views, per-sequence QA plots, SMPL mesh
drawing (OpenCV / matplotlib Agg, no display needed), and exports for other tools (BVH, AMASS-style npz).

Submodules: :mod:`aistpp.viz.render` (virtual camera, skeleton and mesh drawing), :mod:`aistpp.viz.animate`
(videos / gifs), :mod:`aistpp.viz.overlay` (9-view overlays), :mod:`aistpp.viz.qa` (QA metrics and plots),
:mod:`aistpp.viz.sources` (what to draw: corpus, annotation tree, motion pkl), :mod:`aistpp.viz.export` (BVH, AMASS).
"""
