"""The command line's help says what the README and docs/ say: what --model takes, where the tasks
come from by default, which options take a word beside a number, what verify checks."""
import pytest

from bench.cli import main


def _help(capsys, monkeypatch, *command) -> dict[str, str]:
    """`brittlebench COMMAND --help`, one entry per option (its line and those under it, joined)."""
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: phrases are not wrapped apart
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    options, name = {"": text}, ""
    for line in text.splitlines():
        if line.startswith("  -"):
            name = line.split()[0].rstrip(",")
            options[name] = line.strip()
        elif name and line.startswith("    "):
            options[name] += " " + line.strip()
    return options


def test_run_help_agrees_with_the_docs(capsys, monkeypatch):
    run = _help(capsys, monkeypatch, "run")
    assert ".gguf file" in run["--model"] and "HF model name" in run["--model"]
    assert "default: --suite's default" in run["--tasks"]
    for default in ("a zoo model's own families", "pretrained suite for any other model"):
        assert default in run["--tasks"] and default in run["--suite"], default
    assert run["--history-n"].startswith("--history-n N|all ") and "all: every base item" in run["--history-n"]
    assert run["--batch-size"].startswith("--batch-size N|auto ")
    sweep = _help(capsys, monkeypatch, "sweep")
    assert sweep["--history-n"].startswith("--history-n N|all")
    assert sweep["--batch-size"].startswith("--batch-size N|auto")
    assert ".gguf files" in sweep["--models"]


def test_verify_help_says_what_it_checks(capsys, monkeypatch):
    summary = _help(capsys, monkeypatch)[""]
    line = next(l for l in summary.splitlines() if l.strip().startswith("verify "))
    for said in ("digests", "items regenerated", "outcomes re-decided", "scoring rerun", "--reevaluate K re-runs"):
        assert said in line, said
    verify = _help(capsys, monkeypatch, "verify")
    for said in ("regenerated from the run's spec and seed", "re-decided from its stored output and target",
                 "the scoring stage, rerun on the stored files", "Exit 0", "docs/integrity.md"):
        assert said in verify[""], said
    assert "re-run it on K items" in verify["--reevaluate"]
