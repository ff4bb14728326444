"""Predictors: read a model, emit P(failure) per sealed item."""
from .base import READS, ModelView, Observation, Predictor
from .registry import PredictorError, load_predictor, registered
from .trace import Trace

__all__ = ["READS", "ModelView", "Observation", "Predictor", "PredictorError", "load_predictor", "registered", "Trace"]
