"""Attention processors: cross-frame self-attention to the anchor, text cross-attention with keys/values once
per job, and the SDPA helpers they share. Swapped in with context managers that restore the originals.
"""
