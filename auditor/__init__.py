"""AV Auditor: find and fix wrong labels and mismatched sound tracks in audio-visual video data sets.

Data path, one module each: data.manifest -> data.decode -> data.features -> data.cache -> train
(model.network, model.losses, model.noise_estimation, model.correction) -> scoring -> reviews -> export.
"""

__version__ = "0.1.0"
