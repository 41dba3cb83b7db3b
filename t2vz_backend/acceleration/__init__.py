"""Speed-ups that keep the engine's contracts: the UNet run layer by layer so deep features can be reused across
steps (feature reuse), and compiled, channels-last models. Imports torch.
"""
