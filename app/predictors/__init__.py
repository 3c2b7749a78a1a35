"""Predicted accuracy, latency and energy of subnets on hardware targets, each number with its source."""

from app.predictors.hardware import has_latency, hardware_problems, hardware_targets, predict, predict_batch, user_hardware_dir
from app.predictors.records import HardwareTarget, Metric, Prediction

__all__ = ["predict", "predict_batch", "has_latency", "hardware_targets", "hardware_problems", "user_hardware_dir",
           "HardwareTarget", "Metric", "Prediction"]
