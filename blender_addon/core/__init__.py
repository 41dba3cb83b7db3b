"""The add-on's bpy-free core: request building, the job runner and backend session, environment discovery,
paths, channel search and version shims (plain objects in, plain data out). Unit-tested without Blender.
"""
