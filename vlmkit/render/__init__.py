"""From 3-D models to the multi-view renders the captioners read (render.py).

- `views`: the camera convention (glTF axes, six views, bounding-sphere framing) and `views.json`.
- `mesh`: loading with trimesh, the checks that make a bad file a per-model failure, framing.
- `engine`: pyrender over OSMesa/EGL, one off-screen context per process.
- `batch`: discovery, output checks, parallel workers, atomic object folders, `render_report.json`.
- `settings`: render.py's options (one field per flag, ranges declared there) and `run(options)`.
"""
