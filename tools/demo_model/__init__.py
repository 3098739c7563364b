"""Easel's shipped demo model: a tiny SD1.5-architecture text-to-image model.

Modules:
    scenes    procedural data set (coloured shapes on coloured backgrounds) + captions
    judge     deterministic image analyzer (colours, shape, position)
    common    model configs shared by the training scripts
    train_vae / encode_latents / train_unet / export   the training pipeline
    evaluate  held-out prompt accuracy
"""
