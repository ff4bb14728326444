"""What a predictor table shows, in the page and in the terminal alike: which predictors a track
ranks, in what order, and which of its rows are judged against the track's baselines."""
from __future__ import annotations

from ..metrics import RANKING, REFERENCE, SATURATED_SHARE
from ..results import Row, Track

TRACKS = ("blind", "trace")


def num(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def scored(p: Row) -> bool:
    return p.status == "ok" and p.figure("auroc") is not None


def by_ranking(predictors: dict[str, Row], names) -> list[str]:
    """`names`, best ranking figure first; ties keep their order."""
    return sorted(names, key=lambda n: -(predictors[n].figure(RANKING) or -1))


def ranked(predictors: dict[str, Row], track: str | None = None) -> list[str]:
    """The scored predictors (of `track`, or all), best first."""
    return by_ranking(predictors, [n for n, p in predictors.items() if scored(p) and track in (None, p.track)])


def track_tables(predictors: dict[str, Row], tracks: dict[str, Track], keep=lambda p: True) -> dict[str, list[str]]:
    """Each track's rows, best first (ties: its own predictors, then the other track's baselines): its
    predictors and the baselines it is judged against (a blind baseline is shown in the trace track
    too), those `keep` takes; only the tracks where it takes one of the track's own."""
    out = {}
    for track in TRACKS:
        info = tracks.get(track)
        mine = [n for n, p in predictors.items() if p.track == track and keep(p)]
        if info and mine:
            out[track] = by_ranking(predictors, mine + [b for b in info.baselines
                                                        if b in predictors and b not in mine and keep(predictors[b])])
    return out


def own(name: str, p: Row, track: str) -> bool:
    """Whether a row is judged against `track`'s best baseline: not the reference, nor a baseline shown
    from another track (figures only)."""
    return name != REFERENCE and p.track == track


def saturated(p: Row) -> bool:
    return p.saturation >= SATURATED_SHARE


def power(mde: dict) -> str:
    """A track's minimum detectable effect in words (`metrics.minimum_detectable_effect`); where it is
    zero, what that means, not a bar of 0.000."""
    if mde["value"] > 0:
        return mde["note"]
    return ("not sized: most of this track's predictors rank every item as the best baseline does, so their "
            "differences from it do not vary across resamples")
