"""Models: the only module that loads weights (``loading``), the warm cache, what a model reference points at,
where its files are, devices and precision, and the built-in tiny smoke-test model.
"""
