"""`brittlebench verify RUN`: is the run folder what the run wrote? Everything that derives from
the stored files is derived again and compared, one check a function below, in the order of the
table in docs/integrity.md: digests, items (regenerated from the spec and seed), outcomes (each
`correct` decided again by the family's check), results (the run's scoring again), and with
`--reevaluate K` a seeded, stratified sample of K items evaluated again by the run's model."""
from __future__ import annotations

import json
import math
import random
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from predictors import Claim
from tasks import Item, TaskError, resolve_families

from .. import io
from ..errors import UserError
from ..model.evaluate import Outcome, evaluate
from ..model.load import ModelSpec, load_model
from ..scoring.metrics import REFERENCE, SCORING_VERSION
from ..scoring.run import RESULTS_SCHEMA_VERSION, score, score_view, solved_components
from .folder import claims_file, read_claims, sealed_digest, with_claims
from .spec import RunSpec
from .stages import Suite, chat_template, context_needs, generate, too_long

RUN_FILES = ("results.json", "predictions.jsonl", "predictions.sha256", "outcomes.jsonl")  # what verify reads
ITEM_FILES = ("items/base.jsonl", "items/variants.jsonl")  # a leaderboard's copy leaves them out: regenerated
SHOWN = 5  # mismatches named per line; the rest counted


def check_run_folder(run: Path) -> dict:
    """The run's results, or a one-line UserError saying what is wrong with the folder."""
    if not run.is_dir():
        raise UserError(f"no run folder at {run}: pass the folder that 'brittlebench run' wrote")
    for name in RUN_FILES:
        if not (run / name).is_file():
            raise UserError(f"{run} has no {name}: it is not a finished brittlebench run")
    try:
        results = json.loads((run / "results.json").read_text())
        results["predictions_sha256"], results["predictors"], results["schema_version"]
        skipped = results.get("skipped", {})
        if not isinstance(skipped, dict) or not all(isinstance(v, str) for v in skipped.values()):
            raise TypeError("skipped")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise UserError(f"{run / 'results.json'} is corrupted: it is not a brittlebench results file") from None
    if results["schema_version"] != RESULTS_SCHEMA_VERSION:
        made = (results.get("provenance") or {}).get("versions", {}).get("brittlebench", "another version")
        raise UserError(f"{run} was written by brittlebench {made} (results schema {results['schema_version']}); this "
                        f"one reads schema {RESULTS_SCHEMA_VERSION}: use the version that wrote it")
    return results


@dataclass(frozen=True)
class Stored:
    """What the run folder holds, read once: items (None where it stores none), outcomes, predictions."""

    base: list | None  # Item
    variants: list | None  # Item
    sealed: list[dict] | None
    outcomes: dict[str, list]  # split -> Outcome, as outcomes.jsonl lists them
    staged: dict[str, list[dict] | None]  # split -> the rows of stages/outcomes.SPLIT.jsonl, where stored
    predictions: list[dict]
    status: dict[str, dict]  # each predictor's status: stages/predictors.json, else results.json's; sealed claims
    reference: np.ndarray | None


def read_stored(run: Path, results: dict) -> Stored:
    def rows(name: str) -> list[dict] | None:
        return io.read_jsonl(run / name) if (run / name).is_file() else None

    try:
        outcomes: dict[str, list] = {"base": [], "variant": []}
        for row in io.read_jsonl(run / "outcomes.jsonl"):
            outcomes[row["split"]].append(Outcome.from_dict(row))
        base, variants = (None if r is None else [Item.from_dict(x) for x in r] for r in map(rows, ITEM_FILES))
        reference = rows("reference.jsonl")
        status = run / "stages" / "predictors.json"  # a leaderboard's copy: results.json's, scores and all
        status = json.loads(status.read_text()) if status.is_file() else results["predictors"]
        claims = read_claims(run, "predictions")  # the sealed claims, whatever the status says
        for made in claims.values():
            for claim in made:
                Claim.from_json(claim)
        return Stored(base, variants, rows("items/variants.sealed.jsonl"), outcomes,
                      {split: rows(f"stages/outcomes.{split}.jsonl") for split in outcomes},
                      io.read_jsonl(run / "predictions.jsonl"), with_claims(status, claims),
                      None if reference is None else np.array([r[REFERENCE] for r in reference], dtype=float))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{run}: an items, outcomes, predictions or claims file is corrupted "
                        f"({type(e).__name__}: {e}): it is not a run brittlebench wrote") from None


def run_families(results: dict) -> dict:
    """The run's task families, in its order, loaded as the run loaded them."""
    asked = results["spec"].get("tasks") or list(results["provenance"]["tasks"])
    try:
        families = resolve_families(asked)
    except TaskError as e:
        raise UserError(f"cannot check this run's items: {e}") from None
    if list(families) != list(results["provenance"]["tasks"]):
        raise UserError(f"the run's task families ({', '.join(results['provenance']['tasks'])}) are not those "
                        f"{', '.join(asked)} load here: verify it where its task files are")
    return families


def _named(kind: str, wrong: list[str], what: str) -> str:
    """One line naming the first few mismatches and counting the rest."""
    shown = "; ".join(wrong[:SHOWN]) + (f"; and {len(wrong) - SHOWN} more" if len(wrong) > SHOWN else "")
    return f"{kind}: MISMATCH: {len(wrong)} {what}: {shown}"


def _where(item, split: str) -> str:
    return f"{split} {item.family}/{item.cell} {item.id}"


def check_items(results: dict, stored: Stored, families: dict, handle=None) -> tuple[bool, list[str], Stored]:
    """The items are those the spec and seed generate (prompts and targets of a chat run only with
    its model's chat template, `handle`), less what the run skipped (`check_skipped`), and the sealed
    variants are the variants without targets. Where the folder stores no items (a leaderboard's
    copy), the regenerated ones stand for them."""
    spec = results["spec"]
    chat = bool(spec.get("chat"))
    apply = chat_template(handle) if chat and handle is not None else None
    like = RunSpec(n=spec["n"], seed=spec["seed"], shot_mode=spec["shot_mode"])
    suite = generate(like, families, results["provenance"]["shots"], apply)
    made, ran = json.loads(json.dumps(suite.tasks_info)), results["provenance"]["tasks"]
    moved = [name for name in families if any(made[name][k] != ran[name].get(k) for k in ("axes", "cells"))]
    if moved:
        raise UserError(f"the task famil{'y' if len(moved) == 1 else 'ies'} {', '.join(moved)} here "
                        f"{'is' if len(moved) == 1 else 'are'} not what the run used (cells or axes differ): verify "
                        "it with the brittlebench version that wrote it")
    private = bool(results["provenance"].get("private_seed"))
    whole = apply is not None or not chat  # prompts and targets as the run rendered them
    skips_ok, lines = check_skipped(results, families, None if private else suite, handle)
    suite = suite.without(results.get("skipped", {}))
    if stored.base is None or stored.variants is None:
        if private or not whole:
            why = "its items come from a private seed" if private else "a chat run's prompts need its model"
            raise UserError(f"the run folder has no {ITEM_FILES[0]} or {ITEM_FILES[1]}, and {why}: pass the whole "
                            "folder 'brittlebench run' wrote" + ("" if private else ", or --reevaluate K"))
        stored = replace(stored, base=suite.base, variants=suite.variants)
        return skips_ok, lines + [f"items: not stored; the {len(suite.base) + len(suite.variants)} items seed "
                                  f"{spec['seed']} generates are checked against in their place"], stored
    ok = skips_ok
    if stored.sealed is not None:
        resealed = [json.loads(json.dumps(item.sealed().to_dict())) for item in stored.variants]
        if resealed != stored.sealed:
            wrong = [f"{r.get('id')}" for r, s in zip(resealed, stored.sealed) if r != s]
            wrong += ["their numbers differ"] if len(resealed) != len(stored.sealed) else []
            lines.append(_named("items", wrong, f"of {len(resealed)} variants differ from items/variants.sealed.jsonl"))
            ok = False
    if private:
        lines.append("items: not regenerated: they come from a private seed (the run records its SHA-256)")
        return ok, lines, stored
    fields = ("id", "family", "cell", "axes", "meta") + (("prompt", "target") if whole else ())
    wrong = []
    for split, new_items, kept in (("base", suite.base, stored.base), ("variant", suite.variants, stored.variants)):
        if len(new_items) != len(kept):
            wrong.append(f"{len(kept)} {split} items stored, {len(new_items)} generated")
        for new, old in zip(new_items, kept):
            a, b = json.loads(json.dumps(new.to_dict())), json.loads(json.dumps(old.to_dict()))
            differ = [f for f in fields if a[f] != b[f]]
            if differ:
                wrong.append(f"{_where(old, split)} ({', '.join(differ)})")
    total = len(suite.base) + len(suite.variants)
    if wrong:
        lines.append(_named("items", wrong, f"of {total} items differ from those seed {spec['seed']} generates"))
        return False, lines, stored
    lines.append(f"items: the {total} items are those seed {spec['seed']} generates"
                 + (" (less those skipped)" if results.get("skipped") else "")
                 + (", targets included" if whole else " (a chat run: prompts and targets come from its model's "
                    "chat template, checked with --reevaluate)") + ": ok")
    return ok, lines, stored


def check_skipped(results: dict, families: dict, suite, handle=None) -> tuple[bool, list[str]]:
    """What results.json says the model's context could not hold (`skipped`) names families and
    variant cells of the run; with the run's model (`handle`), it is what the token counts of the
    items the run's seed generates (`suite`, none skipped) decide again (`stages.too_long`)."""
    skipped = results.get("skipped", {})
    cells = {f"{name}/{c.name}" for name, family in families.items() for c in family.variant_cells}
    unknown = [key for key in skipped if key not in families and key not in cells]
    if unknown:
        return False, [_named("skipped", unknown, "of the families and cells results.json says were skipped are "
                              "none of the run's families or variant cells")]
    if handle is None or suite is None:  # without the model, or without the items (a private seed)
        again = " (--reevaluate decides it again from the items' token counts)" if suite is not None else ""
        return True, ([f"skipped: {', '.join(skipped)}: longer than the model's context, as results.json "
                       f"records{again}"] if skipped else [])
    limit = handle.card.context_length
    decided = too_long(families, context_needs(handle, suite.base + suite.variants), limit) if limit else {}
    if decided != skipped:
        wrong = [f"{key} ({decided.get(key, 'fits')}; results.json: {skipped.get(key, 'not skipped')})"
                 for key in dict.fromkeys([*decided, *skipped]) if decided.get(key) != skipped.get(key)]
        return False, [_named("skipped", wrong, "families or cells are not what the items' token counts decide")]
    return True, [f"skipped: {', '.join(skipped) or 'nothing'}, as the items' token counts decide with the run's "
                  "tokenizer: ok"]


def check_outcomes(stored: Stored, families: dict) -> tuple[bool, list[str]]:
    """One outcome per item, in the items' order, each `correct` what the family's check says of its
    output and target; the calibration and evaluation stages' own files say the same."""
    wrong, total = [], 0
    for split, items in (("base", stored.base), ("variant", stored.variants)):
        outcomes = stored.outcomes[split]
        if [o.item_id for o in outcomes] != [item.id for item in items]:
            wrong.append(f"{split} outcomes are not those of items/{'base' if split == 'base' else 'variants'}.jsonl")
            continue
        stage = f"stages/outcomes.{split}.jsonl"
        staged = stored.staged[split] or [o.to_dict() for o in outcomes]
        if len(staged) != len(outcomes):
            wrong.append(f"{split} outcomes are not those of {stage}")
            staged = [o.to_dict() for o in outcomes]
        for item, outcome, kept in zip(items, outcomes, staged):
            total += 1
            if families[item.family].check(outcome.output, item) != outcome.correct:
                wrong.append(f"{_where(item, split)} (correct {str(outcome.correct).lower()}, output "
                             f"{outcome.output!r}, target {item.target!r})")
            elif kept != outcome.to_dict():
                wrong.append(f"{_where(item, split)} (output {outcome.output!r}, correct "
                             f"{str(outcome.correct).lower()}; {stage} says {kept.get('output')!r}, "
                             f"{str(kept.get('correct')).lower()})")
    if wrong:
        return False, [_named("outcomes", wrong, f"of {total} outcomes do not follow from their output and target")]
    return True, [f"outcomes: each of the {total} outcomes' correct follows from its output and target: ok"]


def check_predictions(stored: Stored) -> tuple[bool, list[str]]:
    keys = [(r.get("item_id"), r.get("family"), r.get("cell")) for r in stored.predictions]
    if keys == [(item.id, item.family, item.cell) for item in stored.variants]:
        return True, []
    return False, ["predictions: MISMATCH: predictions.jsonl does not list the sealed variant items in order"]


def _close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a)) or (math.isnan(a) and math.isnan(b))
    return a == b


def differences(stored, recomputed, path: str = "") -> list[str]:
    """Where `stored` and `recomputed` differ, as dotted paths (a cell's rows by family/cell)."""
    if isinstance(stored, dict) and isinstance(recomputed, dict):
        return [d for k in list(recomputed) + [k for k in stored if k not in recomputed]
                for d in differences(stored.get(k), recomputed.get(k), f"{path}.{k}" if path else str(k))]
    if isinstance(stored, list) and isinstance(recomputed, list) and len(stored) == len(recomputed):
        def label(row, i):
            if not isinstance(row, dict) or "cell" not in row:
                return str(i)
            return f"{row['family']}/{row['cell']}" if "family" in row else row["cell"]  # a claim's cells: whole
        return [d for i, (a, b) in enumerate(zip(stored, recomputed))
                for d in differences(a, b, f"{path}[{label(b, i)}]")]
    return [] if _close(stored, recomputed) else [path]


BASE_REGION = ("competence", "n_base", "base_failure_rate", "history")


def _in_base_region(path: str, cells: list[dict]) -> bool:
    """Whether a figure of results.json is one of the base region's (what decides the flags)."""
    base = {f"cells[{c['family']}/{c['cell']}]" for c in cells if c["split"] == "base"}
    return (path.startswith(BASE_REGION) or path.split(".")[0] in base
            or (path.startswith("families.") and path.endswith((".base_failure_rate", ".flagged"))))


def check_results(results: dict, stored: Stored, families: dict) -> tuple[bool, list[str]]:
    """The run's scoring (`score`) again on the stored items, outcomes and predictions: every figure
    it gives must be the one results.json holds."""
    names = [n for n, info in stored.status.items() if info.get("status") == "ok"]
    try:
        scores = {n: np.array([p["scores"][n] for p in stored.predictions], dtype=float) for n in names}
    except (KeyError, TypeError, ValueError):
        return False, ["predictions: MISMATCH: predictions.jsonl lacks the scores of a predictor the run says is ok"]
    made = results["provenance"]
    suite = Suite(families, stored.base, stored.variants, made["tasks"], made["shots"]).without(
        results.get("skipped", {}))
    recomputed = score(suite, stored.outcomes["base"], stored.outcomes["variant"], scores, stored.status,
                       results["provenance"]["seed"], stored.reference)
    recomputed = {k: v for k, v in recomputed.items() if k not in ("protocols", "targets")}  # filled after scoring
    compared = list(recomputed) + ["claims"] * ("claims" in results and "claims" not in recomputed)
    moved = differences({k: results.get(k) for k in compared}, json.loads(json.dumps(recomputed)))
    final = (results.get("history") or [{}])[-1]
    if final.get("name") == "final":  # the evaluated model's learning-curve point: its base outcomes again
        for cell in recomputed["cells"]:
            name = f"{cell['family']}/{cell['cell']}"
            if cell["split"] == "base" and not _close(final["base_accuracy"].get(name), 1 - cell["failure_rate"]):
                moved.append(f"history[final].base_accuracy[{name}]")
    base = [m for m in moved if _in_base_region(m, recomputed["cells"])]
    rest = [m for m in moved if m not in base]
    lines = []
    if base:
        lines.append(_named("base region", base, "figures (cells, failure rates, competence flags, families left "
                            "out) differ from what the stored base outcomes give"))
    if rest:
        lines.append(_named("scores", rest, "figures differ from what the stored items, outcomes and predictions give"))
    if lines:
        return False, lines
    flagged = recomputed["competence"]["flagged"]
    n = sum(len(made) for made in (recomputed.get("claims") or {}).values())
    claims = f", {n} claim{'s' * (n != 1)} tested against the sealed claims file" if n else ""
    return True, [f"base region: cells, failure rates and competence recomputed; {len(flagged)} flagged and left "
                  f"out{' (' + ', '.join(flagged) + ')' if flagged else ''}: ok",
                  f"scores: the scoring stage run again on the stored files gives every figure of results.json "
                  f"({len(names)} predictors{claims}): ok"]


def recompute_scores(run: Path, results: dict, stored: Stored, name: str, view: dict, eligible_only: bool = False
                     ) -> dict[str, dict]:
    """A protocol's or target's figures again (`score_view`), from `name`.jsonl and the stored outcomes
    (and, for the compositional target, components.jsonl)."""
    try:
        predictions = io.read_jsonl(run / f"{name}.jsonl")
        correct = {o.item_id: o.correct for o in stored.outcomes["variant"]}
        failed = np.array([not correct[p["item_id"]] for p in predictions], dtype=bool)
        cells = np.array([f"{p['family']}/{p['cell']}" for p in predictions])
        status = {n: {"track": info.get("track") or results["predictors"][n]["track"]}
                  for n, info in view["predictors"].items() if info.get("status", "ok") == "ok"}
        scores = {n: np.array([p["scores"][n] for p in predictions], dtype=float) for n in status}
        keep = solved_components(io.read_jsonl(run / "components.jsonl"), [p["item_id"] for p in predictions]) \
            if eligible_only else None
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise UserError(f"{run}: {name}.jsonl, outcomes.jsonl or components.jsonl is corrupted or does not match "
                        "the results") from None
    return score_view(failed, cells, scores, status, results["provenance"]["seed"], keep)


def _screen(run: Path) -> tuple[bool, str]:
    """A run that began as a predict-only screen: its sealed blind predictions must be intact and be
    the blind columns of the final predictions, which shows they were made before any variant was
    evaluated."""
    stages = run / "stages"
    try:
        data = (stages / "screen.jsonl").read_bytes()
        digest = (stages / "screen.sha256").read_text().split()[0]
        when = json.loads((stages / "screen.json").read_text())["sealed"]
        screened = [json.loads(line) for line in data.decode().splitlines()]
        final = {r["item_id"]: r["scores"] for r in io.read_jsonl(run / "predictions.jsonl")}
    except (OSError, IndexError, KeyError, ValueError):
        return False, "screen: stages/screen.* is incomplete or corrupted"
    if io.sha256(data) != digest:
        return False, f"screen: stages/screen.jsonl does not match its sha256 {digest}: MISMATCH"
    same = all(r["item_id"] in final and all(final[r["item_id"]].get(n) == v for n, v in r["scores"].items())
               for r in screened)
    names = sorted(screened[0]["scores"]) if screened else []
    return same, (f"screen: {len(names)} blind predictors sealed {when} (sha256 {digest[:16]}...) before any variant "
                  f"was evaluated; the final predictions {'hold them unchanged: ok' if same else 'differ: MISMATCH'}")


def check_digests(run: Path, results: dict) -> tuple[bool, list[str]]:
    """The predictions (with their claims, where sealed) against their .sha256 and results.json; the
    model run.json records; a screen's sealed predictions (`_screen`)."""
    actual = sealed_digest(run, "predictions")  # predictions.jsonl, then the claims where there are any
    said = (run / "predictions.sha256").read_text().split()
    sealed = said[0] if said else ""
    recorded = results["predictions_sha256"]
    claimed = (run / claims_file("predictions")).is_file()
    lines = [f"predictions.jsonl sha256 {actual}" + (f" (with {claims_file('predictions')})" if claimed else ""),
             f"predictions.sha256       {sealed} {'ok' if sealed == actual else 'MISMATCH'}",
             f"results.json records     {recorded} {'ok' if recorded == actual else 'MISMATCH'}"]
    ok = sealed == actual == recorded
    try:
        made = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else None
    except ValueError:
        made = {}
    if made is not None and made.get("fingerprint") != results["provenance"]["model"]["fingerprint"]:
        ok = False
        lines.append(f"run.json: MISMATCH: it records model {made.get('fingerprint')}, results.json "
                     f"{results['provenance']['model']['fingerprint']}")
    if (run / "stages" / "screen.jsonl").is_file():
        screen_ok, line = _screen(run)
        ok &= screen_ok
        lines.append(line)
    return ok, lines


def stratified_sample(stored: Stored, k: int, seed: int) -> list[tuple[str, object, object]]:
    """K (split, item, stored outcome), drawn with `seed`, stratified by split, family and stored
    outcome: each stratum in turn, in an order drawn once, gives one item it has not given yet,
    until K are drawn or none is left. A stratum of stored failures gets its share however rare
    failures are: where a forger made a family fail its base region, most of them are forged."""
    rng = random.Random(seed)
    strata: dict[tuple[str, str, bool], list] = {}
    for split, items in (("base", stored.base), ("variant", stored.variants)):
        for item, outcome in zip(items, stored.outcomes[split]):
            strata.setdefault((split, item.family, outcome.correct), []).append((split, item, outcome))
    queues = [rng.sample(members, len(members)) for members in strata.values()]
    rng.shuffle(queues)
    taken: list = []
    while len(taken) < k and any(queues):
        for queue in queues:
            if queue and len(taken) < k:
                taken.append(queue.pop())
    return taken


def _same_answer(stored, fresh) -> bool:
    """The same decision and answer; where one side is the greedy answer's decided prefix (a
    fast-path failure), the other's answer starts with it."""
    if stored.correct != fresh.correct:
        return False
    if stored.complete and fresh.complete:
        return stored.output == fresh.output
    return fresh.output.startswith(stored.output) or stored.output.startswith(fresh.output)


def check_reevaluated(results: dict, stored: Stored, families: dict, handle, k: int, seed: int
                      ) -> tuple[bool, list[str]]:
    """K stored outcomes against the model's own, evaluated again here."""
    recorded = results["provenance"]["model"]["fingerprint"]
    name = results["provenance"]["model"]["spec"]["name_or_path"]
    if handle.fingerprint != recorded:
        return False, [f"reevaluate: MISMATCH: the model {name} here has fingerprint {handle.fingerprint}, the run "
                       f"records {recorded}: it is not the model the run names"]
    sample = stratified_sample(stored, k, seed)
    batch = results["spec"].get("batch_size")
    fresh = evaluate(handle, [item for _, item, _ in sample], batch if isinstance(batch, int) else 64, families)
    wrong = [f"{_where(item, split)} (stored correct {str(old.correct).lower()} output {old.output!r}; here correct "
             f"{str(new.correct).lower()} output {new.output!r})"
             for (split, item, old), new in zip(sample, fresh) if not _same_answer(old, new)]
    strata = len({(split, item.family, old.correct) for split, item, old in sample})
    if wrong:
        return False, [_named("reevaluate", wrong, f"of {len(sample)} re-evaluated items differ from the stored "
                              f"outcomes (sample seed {seed})")]
    return True, [f"reevaluate: {len(sample)} items drawn with sample seed {seed} ({strata} strata of split, family "
                  f"and outcome) evaluated again with {name} ({recorded}): outputs and outcomes as stored: ok"]


def verify(run: Path, reevaluate: int = 0, sample_seed: int | None = None) -> tuple[bool, list[str]]:
    """(ok, lines): every check above; with `reevaluate`, that many items evaluated again (a
    `sample_seed` drawn here unless given: a submitter cannot know which)."""
    run = Path(run)
    results = check_run_folder(run)
    stored = read_stored(run, results)
    families = run_families(results)
    handle = load_model(ModelSpec(**results["provenance"]["model"]["spec"])) if reevaluate else None
    ok, lines = check_digests(run, results)
    passed, said, stored = check_items(results, stored, families, handle)
    checks = [(passed, said), check_outcomes(stored, families), check_predictions(stored)]
    if reevaluate:
        seed = secrets.randbelow(2**31) if sample_seed is None else sample_seed
        checks.append(check_reevaluated(results, stored, families, handle, reevaluate, seed))
    for passed, said in checks:
        ok &= passed
        lines += said
    if results.get("scoring_version", 1) != SCORING_VERSION:
        lines.append(f"scores: made by scoring version {results.get('scoring_version', 1)}, this is version "
                     f"{SCORING_VERSION}: rerun the run to recompute them (the digests above still hold)")
        return False, lines
    passed, said = check_results(results, stored, families)
    ok &= passed
    lines += said
    views = []
    for protocol, view in results.get("protocols", {}).items():
        name = f"predictions.{protocol}"
        path = run / f"{name}.jsonl"
        actual = io.sha256(path.read_bytes()) if path.is_file() else "missing"
        sealed = (run / f"{name}.sha256").read_text().split()[0] if (run / f"{name}.sha256").is_file() else "missing"
        same = actual == sealed == view.get("predictions_sha256")
        ok &= same
        lines.append(f"{name}.jsonl sha256 {'ok' if same else 'MISMATCH'}")
        if same:
            views.append((f"protocol {protocol}", name, view, False))
    for target, view in results.get("targets", {}).items():
        views.append((f"target {target}", "predictions", view, True))
    for label, name, view, eligible_only in views:
        recomputed = recompute_scores(run, results, stored, name, view, eligible_only)
        moved = [p for predictor, metrics in recomputed.items()
                 for p in differences({k: v for k, v in view["predictors"][predictor].items() if k in metrics},
                                      json.loads(json.dumps(metrics)), predictor)]
        ok &= not moved
        lines.append(_named(label, moved, "figures differ from what the stored files give") if moved else
                     f"{label}: scores recomputed from the stored files for {len(recomputed)} predictors: ok")
    lines.append("verified" if ok else "MISMATCH: this run folder was edited after it was written")
    return ok, lines
