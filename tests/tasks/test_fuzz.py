"""Property-based tests: generated targets always pass the independent solvers, and the
task-file loader never crashes (it loads or gives the one-line TaskError)."""
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks import TaskError, family_names, get_family, load_task_file
from tests.tasks.solvers import SOLVERS

FAMILIES = family_names()
QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@QUICK
@given(family=st.sampled_from(FAMILIES), cell_index=st.integers(0, 20), n=st.integers(1, 25),
       seed=st.integers(0, 2**63))
def test_every_generated_target_passes_the_solver(family, cell_index, n, seed):
    fam = get_family(family)
    cell = fam.cells[cell_index % len(fam.cells)]
    items = fam.generate(cell.name, n, seed)
    assert len(items) == n
    for item in items:
        assert SOLVERS[family](item.prompt) == item.target
        assert fam.check(item.target, item)
        for part in fam.components(item):
            assert SOLVERS[family](part.prompt) == part.target


def _load_or_task_error(path):
    try:
        family = load_task_file(path)
    except TaskError as e:
        assert "\n" not in str(e)
        return None
    assert family.base_cells and family.variant_cells
    return family


@QUICK
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_never_crash_the_loader(tmp_path, data):
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(data)
    _load_or_task_error(path)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=8)
row = st.fixed_dictionaries({}, optional={
    "prompt": st.one_of(st.text(max_size=10), json_values), "target": st.one_of(st.text(max_size=10), json_values),
    "cell": st.one_of(st.sampled_from(["a", "b", ""]), json_values),
    "split": st.one_of(st.sampled_from(["base", "variant", "test"]), json_values),
    "shift": st.one_of(st.sampled_from(["depth", "base", "bigger"]), json_values),
    "axes": json_values, "id": st.one_of(st.text(max_size=4), json_values)})


@QUICK
@given(rows=st.lists(st.one_of(row, json_values), max_size=6))
def test_arbitrary_json_rows_load_or_say_what_is_wrong(tmp_path, rows):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    family = _load_or_task_error(path)
    if family is not None:
        total = sum(len(family.generate(c.name, 100)) for c in family.cells)
        assert total == len(rows)
