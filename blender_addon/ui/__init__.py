"""Draw code: the sequencer and properties panels, the preferences layout, and logs in the Text Editor.
"""
