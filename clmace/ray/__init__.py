"""Batch inference on Ray (the optional extra `clmace[ray]`): `Predictor` for `ray.data.Dataset.map_batches`,
one InferenceSession per actor started warm from a shared compiled-program file, and `run_batch`, the
resumable job behind `clmace batch`."""

from clmace.ray.batch import BatchReport, run_batch
from clmace.ray.predictor import Predictor

__all__ = ["BatchReport", "Predictor", "run_batch"]
