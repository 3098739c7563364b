"""Trainer for the shipped demo upscaler (``models/ESRGAN/easel-demo-2x.safetensors``)."""
