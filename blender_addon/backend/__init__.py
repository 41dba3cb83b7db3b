"""The backend package bundled with the add-on (a symlink to ../../t2vz_backend in the repository; a copy in the built zip).

Only its torch-free modules (protocol, validation, client) are imported inside Blender.
"""
