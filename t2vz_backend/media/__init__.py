"""Media I/O: reading source frames (image folders, movies) and writing frames and previews.
"""
