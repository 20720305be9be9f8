"""The data layer's parts: random-access sources, the sampler, host-side decoding and
augmentation, and what runs on the device. `input_pipeline.py` puts them together."""
