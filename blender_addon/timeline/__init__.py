"""The sequencer side of a job: selected strips in (``sources``), the generated image strip out (``sequencer``).
"""
