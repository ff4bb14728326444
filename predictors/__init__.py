"""Predictors: read a model, emit P(failure) per sealed item."""
from .base import READS, TRACKS, ModelView, NotApplicable, Observation, Predictor, track_of
from .claims import Claim
from .registry import PredictorError, load_predictor, registered
from .trace import Trace

__all__ = ["READS", "TRACKS", "track_of", "Claim", "ModelView", "NotApplicable", "Observation", "Predictor", "PredictorError", "load_predictor", "registered", "Trace"]
