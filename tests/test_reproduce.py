"""``astrollama reproduce``: the job graph of a published row (sbatch lines, dependencies, resources)
and the refusals of bad targets, without Slurm and without data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from astrollama import paper
from astrollama.cli import main

REPO = Path(__file__).resolve().parents[1]
TARGET_8B = REPO / "reproduce" / "astrollama-3-8b-base_aic.yaml"
LINE = re.compile(r"^JOB_(\d+)=\$\((sbatch .*)\)  # (\S+)$")


def _target(tmp_path: Path, edit, name: str = "t.yaml", src: Path = TARGET_8B) -> Path:
    data = yaml.safe_load(src.read_text())
    edit(data)
    f = tmp_path / name
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    return f


def _jobs(out: str) -> list[tuple[int, list[str], str]]:
    jobs = []
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            jobs.append((int(m.group(1)), m.group(2).split(), m.group(3)))
    return jobs


def test_8b_target_on_2_nodes_x_8_gpus(tmp_path, capsys) -> None:
    """The 8B AIC target with launch.nodes=2: every stage one sbatch line, requeueable, each waiting
    for the one before (afterok), CPT on 2 nodes x 8 GPUs, the published 71.9 in the header."""
    f = _target(tmp_path, lambda d: d["cpt"].update(overrides=["launch.nodes=2", "launch.gpus_per_node=8"]))
    assert main(["reproduce", str(f), "--dry-run"]) == 0
    out = capsys.readouterr().out
    pub = paper.MCQ_SCORES["AstroLLaMA-3-8B-Base_AIC"]
    assert f"AstroLLaMA-3-8B-Base_AIC = {pub.value}" in out and "arXiv:2409.19750" in out
    jobs = _jobs(out)
    assert [s for _, _, s in jobs] == ["harvest", "download", "ocr", "aic", "build", "cpt", "eval", "report"]
    for i, (n, cmd, stage) in enumerate(jobs):
        assert n == i + 1 and cmd[:2] == ["sbatch", "--parsable"] and "--requeue" in cmd
        assert f"--job-name=astrollama-{stage}" in cmd
        deps = [c for c in cmd if c.startswith("--dependency=")]
        assert deps == ([] if i == 0 else [f"--dependency=afterok:$JOB_{n - 1}"]), cmd
        assert any(c.startswith("--time=") for c in cmd), cmd
    by = {s: cmd for _, cmd, s in jobs}
    cpt = by["cpt"]
    assert "--nodes=2" in cpt and "--gpus-per-node=8" in cpt
    script = cpt.index("slurm/cpt.sh")
    assert cpt[script + 1] == "recipes/astrollama-3-8b-base_aic.yaml"
    assert "data.dataset_path=work/corpora/aic/train" in cpt and "launch.nodes=2" in cpt
    # the sharded data stages are arrays; OCR asks for a GPU per task; the build is one wide job
    for stage in ("download", "ocr", "aic"):
        assert "--array=0-15" in by[stage]
    assert "--gpus-per-node=1" in by["ocr"] and "--cpus-per-task=16" in by["build"]
    for stage in ("harvest", "download", "ocr", "aic", "build", "eval", "report"):
        cmd = by[stage]
        assert cmd[cmd.index("slurm/stage.sh") :] == [
            "slurm/stage.sh",
            "reproduce",
            str(f),
            "--run-stage",
            stage,
        ]


def test_shipped_8b_target_dry_run_needs_no_data(capsys) -> None:
    """`astrollama reproduce astrollama-3-8b-base_aic --dry-run` on a clone with no data: the whole
    graph, CPT asking for the recipe's 1 node x 8 GPUs."""
    assert main(["reproduce", "astrollama-3-8b-base_aic", "--dry-run"]) == 0
    jobs = {s: cmd for _, cmd, s in _jobs(capsys.readouterr().out)}
    assert len(jobs) == 8 and "--nodes=1" in jobs["cpt"] and "--gpus-per-node=8" in jobs["cpt"]


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "reproduce").glob("*.yaml")))
def test_every_shipped_target_plans(name, capsys) -> None:
    assert main(["reproduce", name, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert _jobs(out)[-1][2] == "report"


def test_demo_target_runs_the_demo_configs(capsys) -> None:
    """The toy target's graph: data_prep/demo.yaml's stages, the demo recipes, eval/demo.yaml."""
    assert main(["reproduce", "demo", "--dry-run", "--local"]) == 0
    out = capsys.readouterr().out
    assert (
        "harvest -> download -> ocr -> aic -> summarize -> build -> demo-sft -> cpt -> sft -> merge -> eval -> report"
        in out
    )
    assert "astrollama data run data_prep/demo.yaml --stage build  # build" in out
    assert "bash slurm/cpt.sh recipes/demo-smollm2-135m-sft.yaml" in out
    # one command evaluates the four models (each loaded once) and embeds them
    (line,) = [x for x in out.splitlines() if "astrollama eval models --config eval/demo.yaml" in x]
    assert "astrollama eval model " not in out and "astrollama eval embed" not in out
    assert line.count(" --model ") == 4 and "--embed-out=work/demo/eval/embeddings" in line
    for role in ("base", "cpt", "sft", "merged"):
        assert f"--out=work/demo/eval/results/{role}" in line
    assert line.count("--recipe=astrollama-3-8b-base_aic") == 2  # base and CPT stand beside the rows


BAD = [
    (lambda d: d.update(colour="red"), "colour: unknown key"),
    (lambda d: d["cpt"].update(recipie="x"), "cpt.recipie: unknown key"),
    (lambda d: d["data"].update(stages=["harvest", "ocrr"]), "data.stages: stage 'ocrr' is not in"),
    (lambda d: d.update(after={"evaluate": ["cpt"]}), "after.evaluate: unknown stage 'evaluate'"),
    (lambda d: d.update(after={"harvest": ["report"]}), "after: dependency cycle"),
    (lambda d: d.update(row="AstroLLaMA-9"), "row: 'AstroLLaMA-9' is not a row"),
    (lambda d: d["data"].update(set=["build.shingle_size=5"]), "build.shingle_size: unknown key"),
    (lambda d: d["data"].update(set=["build.num_perm='128'"]), "build.num_perm: '128' is a string"),
]


@pytest.mark.parametrize(("edit", "message"), BAD)
def test_bad_target_is_one_line_exit_2(tmp_path, capsys, edit, message) -> None:
    f = _target(tmp_path, edit)
    assert main(["reproduce", str(f), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and message in captured.err, captured.err


def test_bad_pipeline_yaml_is_refused(tmp_path, capsys) -> None:
    cfg = tmp_path / "p.yaml"
    cfg.write_text((REPO / "data_prep" / "demo.yaml").read_text() + "\nsumarize: {}\n")
    f = _target(tmp_path, lambda d: d["data"].update(config=str(cfg), stages=None, set=[]))
    assert main(["reproduce", str(f), "--dry-run"]) == 2
    assert "sumarize: unknown section" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "eval", "--until", "ocr"], "--from eval comes after --until ocr"),
        (["--from", "training"], "--from training: no such stage"),
        (["--until", "sft"], "--until sft: no such stage"),
    ],
)
def test_bad_range_is_refused(capsys, args, message) -> None:
    assert main(["reproduce", "astrollama-3-8b-base_aic", "--dry-run", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and captured.err.count("\n") == 1


def test_missing_target_lists_the_known_ones(capsys) -> None:
    assert main(["reproduce", "astrollama-4", "--dry-run"]) == 2
    assert "no such target (known: " in capsys.readouterr().err


def test_from_a_stage_whose_inputs_are_missing_names_the_stage_that_makes_them(tmp_path, capsys) -> None:
    from astrollama.demo import demo_target

    f = tmp_path / "toy.yaml"
    f.write_text(yaml.safe_dump(demo_target(tmp_path / "work")))
    assert main(["reproduce", str(f), "--local", "--from", "cpt"]) == 2
    err = capsys.readouterr().err
    assert f"stage cpt: its input {tmp_path / 'work' / 'sft'} is not complete: stage demo-sft makes it" in err
    assert f"astrollama reproduce {f} --from demo-sft" in err
    assert not (tmp_path / "work" / "run").exists()  # nothing ran


@pytest.mark.slow
def test_local_run_in_order_then_a_rerun_skips_complete_stages(tmp_path, capsys) -> None:
    """Without Slurm the graph runs in order here; each stage leaves its marker, a rerun skips it,
    and a later stage started before its input exists names the stage that makes it."""
    from astrollama.demo import demo_target

    f = tmp_path / "toy.yaml"
    f.write_text(yaml.safe_dump(demo_target(tmp_path / "work")))
    assert main(["reproduce", str(f), "--local", "--until", "aic"]) == 0
    out = capsys.readouterr().out
    ran = re.findall(r"^\[reproduce\] (\S+): done in", out, re.M)
    assert ran == ["harvest", "download", "ocr", "aic"]
    done = tmp_path / "work" / "done"
    marks = {p.name: p.stat().st_mtime_ns for p in done.iterdir()}
    assert sorted(marks) == ["aic.json", "download.json", "harvest.json", "ocr.json"]
    assert (tmp_path / "work" / "prep" / "aic").is_dir()

    assert main(["reproduce", str(f), "--local", "--until", "aic"]) == 0
    out = capsys.readouterr().out
    assert out.count("complete, skipped") == 4 and "done in" not in out
    assert {p.name: p.stat().st_mtime_ns for p in done.iterdir()} == marks

    assert main(["reproduce", str(f), "--local", "--from", "build"]) == 2
    assert "stage summarize makes it" in capsys.readouterr().err


# Every recipe with a published row, and that row (astrollama.paper.MCQ_SCORES, or
# astrollama.targets.OTHER_ROWS for AstroLLaMA-1, whose published number is a perplexity).
PUBLISHED_RECIPES = {
    **{recipe: row for recipe, (row, _base) in paper.RECIPE_SCORES.items()},
    "astrollama-2-7b-base_abstract": "AstroLLaMA-2-7B-Base_Abstract",
    "astrollama-2-70b-chat_aic": "AstroLLaMA-2-70B-Chat_AIC",
    "astrosage-8b-sft": "AstroSage-Llama-3.1-8B",
    "astrosage-8b-merge": "AstroSage-Llama-3.1-8B",
}
# published rows of our own kind of model that no recipe here reproduces
NO_RECIPE = {"AstroSage-Llama-3.1-70B"}
TARGETS = sorted(p.stem for p in (REPO / "reproduce").glob("*.yaml"))


def test_every_recipe_with_a_published_row_has_a_target() -> None:
    """Each recipe that reproduces a published row is in a target comparing with that row, and every
    published AstroLLaMA / AstroSage row has a recipe here (or is listed as having none)."""
    from astrollama.targets import OTHER_ROWS

    for recipe in PUBLISHED_RECIPES:
        assert (REPO / "recipes" / f"{recipe}.yaml").is_file(), recipe
    ours = {r for r in [*paper.MCQ_SCORES, *OTHER_ROWS] if r.startswith("Astro")}
    assert ours == set(PUBLISHED_RECIPES.values()) | NO_RECIPE
    used: dict[str, set[str]] = {}
    for name in TARGETS:
        t = yaml.safe_load((REPO / "reproduce" / f"{name}.yaml").read_text())
        for part in ("cpt", "sft", "merge"):
            if part in t:
                used.setdefault(Path(t[part]["recipe"]).stem, set()).add(t["row"])
    missing = {r: row for r, row in PUBLISHED_RECIPES.items() if row not in used.get(r, set())}
    assert not missing, f"no target for {missing}"


@pytest.mark.parametrize("name", TARGETS)
def test_target_dry_run_in_a_fresh_work_dir(name, tmp_path, capsys) -> None:
    """Every shipped target from a clone with no data: the whole graph as sbatch lines in stage order,
    each job after the one before (afterok), each training job asking for its recipe's nodes x GPUs
    with a time and a memory, and the row's published number in the header."""
    from astrollama.targets import published_number
    from astrollama.train.recipe import load_recipe

    t = yaml.safe_load((REPO / "reproduce" / f"{name}.yaml").read_text())
    t["work"] = str(tmp_path / "work")  # no markers: nothing is complete
    for part in ("cpt", "sft"):  # run directories there too (a finished local run would be skipped)
        if part in t:
            t[part]["overrides"] = [*t[part].get("overrides", []), f"launch.run_dir={tmp_path / part}"]
    if "merge" in t:
        t["merge"]["output"] = str(tmp_path / "merged")
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(t, sort_keys=False))
    assert main(["reproduce", str(f), "--dry-run"]) == 0
    out = capsys.readouterr().out
    if t["row"] != "none":
        assert f"# published: {t['row']} = {published_number(t['row']).value}" in out
    (stages_line,) = [x for x in out.splitlines() if x.startswith("# stages: ")]
    order = stages_line.removeprefix("# stages: ").split(";")[0].split(" -> ")
    data_stages = t["data"].get("stages") or order[: order.index("cpt")]
    expected = [*data_stages, "cpt", *[p for p in ("sft", "merge") if p in t], "eval", "report"]
    if name == "demo":  # the demo's data config runs its own demo-sft stage after build
        expected = [s for s in order if s in expected or s == "demo-sft"]
    assert order == expected, order
    jobs = _jobs(out)
    assert [s for _, _, s in jobs] == order and "complete, skipped" not in out
    for i, (n, cmd, _stage) in enumerate(jobs):
        deps = [c for c in cmd if c.startswith("--dependency=")]
        assert deps == ([] if i == 0 else [f"--dependency=afterok:$JOB_{n - 1}"]), cmd
        assert any(c.startswith("--time=") for c in cmd) and "--requeue" in cmd, cmd
    by = {s: cmd for _, cmd, s in jobs}
    for part in ("cpt", "sft"):
        if part not in t:
            continue
        overrides = [x for x in by[part][by[part].index("slurm/cpt.sh") + 2 :]]
        r = load_recipe(REPO / t[part]["recipe"], overrides)
        gpus = 0 if r.trainer.get("use_cpu") is True else r.launch.gpus_per_node
        assert f"--nodes={r.launch.nodes}" in by[part] and f"--gpus-per-node={gpus}" in by[part], by[part]
        assert any(c.startswith("--mem=") for c in by[part]), by[part]
        assert by[part][by[part].index("slurm/cpt.sh") + 1] == t[part]["recipe"]
    if "sft" in t:  # SFT starts from the CPT run's final model
        assert f"model.name_or_path={tmp_path / 'cpt' / 'checkpoints'}" in by["sft"]
    if "merge" in t:
        assert f"models.sft.path={tmp_path / 'sft' / 'checkpoints'}" in by["merge"]


def test_docs_list_every_target() -> None:
    """docs/reproduce.md's table of targets names every file in reproduce/, and its dry-run block
    shows each published target (tests/test_docs.py runs those lines as written)."""
    doc = (REPO / "docs" / "reproduce.md").read_text(encoding="utf-8")
    for name in TARGETS:
        assert f"| `{name}` |" in doc, name
        if name != "demo":
            assert f"astrollama reproduce {name} --dry-run" in doc, name
