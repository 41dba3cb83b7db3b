"""The backend package bundled with the add-on.

In the repository it is a symlink to ../../t2vz_backend; the built zip holds a copy.

Only its torch-free modules (protocol, validation, client) are imported inside Blender.
"""
