"""The step-major denoising loop and what it is made of: the schedule (T, T′ as noise levels), diffusers
schedulers, keyed per-frame noise, prompt encoding, VAE decoding and the job context. Imports torch.
"""
