"""The three modes as numbered steps (text->video, ControlNet video, Video Instruct-Pix2Pix) and the latent
motion they share: dynamics, background smoothing, warps. Imports torch.
"""
