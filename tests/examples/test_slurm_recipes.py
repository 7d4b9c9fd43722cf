"""The Slurm recipes in examples/slurm parse, use only radiossl options that exist, and submit what they say."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from radiossl.cli import app

ROOT = Path(__file__).resolve().parents[2]
SLURM = ROOT / "examples" / "slurm"
SCRIPTS = sorted(SLURM.glob("*.sbatch"))
ARRAY_SCRIPTS = ["preprocess_array.sbatch", "kmeans_predict_array.sbatch", "sweep_array.sbatch"]

# Commands the scripts may use before radiossl has them: they must say so in their header.
PLANNED_COMMANDS: dict[str, str] = {}
# Options being added in parallel to existing commands; checked as soon as the command lists them.
PENDING_OPTIONS: dict[tuple[str, ...], dict[str, str]] = {}

runner = CliRunner()


def _joined_lines(script: Path) -> list[str]:
    """The script's lines with backslash continuations joined."""
    return script.read_text().replace("\\\n", " ").splitlines()


def _array_options(lines: list[str]) -> dict[str, set[str]]:
    """Options put into bash arrays by ``name=(...)`` and ``name+=(...)``, by array name."""
    found: dict[str, set[str]] = {}
    for line in lines:
        for name, body in re.findall(r"(\w+)\+?=\(([^)]*)\)", line):
            found.setdefault(name, set()).update(t for t in body.split() if t.startswith("--"))
    return found


def radiossl_calls(script: Path) -> list[tuple[tuple[str, ...], set[str]]]:
    """Every ``-m radiossl CMD [SUB] ...`` in ``script``: its command words and the options it passes.

    Options reach the command directly or through bash arrays expanded in the call (``"${settings[@]}"``).
    """
    lines = _joined_lines(script)
    arrays = _array_options(lines)
    calls = []
    for line in lines:
        if line.lstrip().startswith("#") or "-m radiossl " not in line:
            continue
        tokens = shlex.split(line.split("-m radiossl ", 1)[1], comments=True)
        words: list[str] = []
        for token in tokens:
            if not re.fullmatch(r"[a-z][a-z-]*", token):
                break
            words.append(token)
        options = {t.rstrip(")").split("=", 1)[0] for t in tokens if t.startswith("--")}
        for name in re.findall(r"\$\{(\w+)\[@\]\}", line.split("-m radiossl ", 1)[1]):
            options |= arrays.get(name, set())
        calls.append((tuple(words), options))
    return calls


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_and_puts_every_sbatch_line_before_the_first_command(script: Path) -> None:
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/bin/bash"
    first_command = next(i for i, line in enumerate(lines[1:], 1) if line.strip() and not line.startswith("#"))
    late = [line for line in lines[first_command:] if line.startswith("#SBATCH")]
    assert not late, f"sbatch ignores #SBATCH lines after the first command: {late}"
    assert any(line.startswith("#SBATCH --job-name=") for line in lines[:first_command])


def test_the_four_recipes_and_their_readme_exist() -> None:
    names = {p.name for p in SCRIPTS}
    assert names == {*ARRAY_SCRIPTS, "pretrain_multinode.sbatch"}
    readme = (SLURM / "README.md").read_text()
    assert all(name in readme for name in names)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_radiossl_command_and_option_exists(script: Path) -> None:
    calls = radiossl_calls(script)
    assert calls, f"{script.name} runs no radiossl command"
    for words, options in calls:
        assert words, f"{script.name}: a radiossl call without a command"
        shown = runner.invoke(app, [*words, "--help"], terminal_width=300)
        if shown.exit_code != 0:
            assert words[0] in PLANNED_COMMANDS, f"{script.name}: radiossl {' '.join(words)} does not exist"
            assert "PLANNED" in script.read_text(), f"{script.name} uses a planned command without saying so"
            continue
        pending = PENDING_OPTIONS.get(words, {})
        missing = {o for o in options if not re.search(rf"{re.escape(o)}(?![\w-])", shown.output)}
        assert missing <= set(pending), f"{script.name}: radiossl {' '.join(words)} has no {sorted(missing)}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_readme_names_every_variable_the_script_reads(script: Path) -> None:
    readme = (SLURM / "README.md").read_text()
    variables = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", script.read_text()))
    assert variables, script.name
    assert not [v for v in sorted(variables) if f"`{v}`" not in readme]


# --------------------------------------------------------------------------------------------------
# Running the scripts against stand-ins for sbatch, srun, scontrol and torchrun


def _stand_ins(tmp_path: Path) -> dict[str, str]:
    """A PATH whose sbatch/srun/scontrol/torchrun/python record their arguments in ``calls.log``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    record = f'printf "%s\\0" "$(basename "$0")" "$@" >> {shlex.quote(str(log))}; printf "\\n" >> {log}\n'
    stand_ins = {
        # --parsable prints "id;cluster" on multi-cluster installations; the scripts keep the id.
        "sbatch": record + 'n=$(( $(grep -c "^sbatch" ' + str(log) + ') + 1000 )); echo "$n;cluster1"\n',
        "srun": record + 'exec "$@"\n',
        "scontrol": record + 'printf "node-a\\nnode-b\\n"\n',
        "torchrun": record,
        # python -c runs for real; -m radiossl is recorded
        "python-stand-in": f'if [ "$1" = -c ]; then exec {shlex.quote(sys.executable)} "$@"; fi\n' + record,
    }
    for name, body in stand_ins.items():
        path = bin_dir / name
        path.write_text("#!/bin/bash\n" + body)
        path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["PYTHON"] = str(bin_dir / "python-stand-in")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "calls.log"
    if not log.is_file():
        return []
    return [line.split("\0")[:-1] for line in log.read_text().split("\n") if line]


def _run(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SLURM / script), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


RECIPE_ENV = {
    "preprocess_array.sbatch": {"RAW": "/data/raw dir", "PROC": "/data/proc", "PAIRS": "8"},
    "kmeans_predict_array.sbatch": {"PROC": "/data/proc", "CENTROIDS": "/data/proc/kmeans/k10.npy"},
    "sweep_array.sbatch": {"RAW": "/data/raw", "SWEEP": "/data/sweep", "WEIGHTS": "scratch /c.pt", "RATIOS": "0.1 1"},
}
FINAL_COMMAND = {
    "preprocess_array.sbatch": "-m radiossl preprocess --dataset brats18 --data /data/raw\\ dir --out /data/proc "
    "--views cluster --pairs 8 --merge-only",
    "kmeans_predict_array.sbatch": "-m radiossl kmeans predict --data /data/proc --centroids "
    "/data/proc/kmeans/k10.npy --device auto",
    "sweep_array.sbatch": "-m radiossl sweep report /data/sweep",
}


@pytest.mark.parametrize("script", ARRAY_SCRIPTS)
def test_on_a_login_node_the_array_is_submitted_then_the_final_job_after_it(tmp_path: Path, script: str) -> None:
    env = {**_stand_ins(tmp_path), **RECIPE_ENV[script]}
    done = _run(script, env, "--array=1-3", "--partition=cpu")
    assert done.returncode == 0, done.stderr
    array, final = _calls(tmp_path)
    assert array[0] == final[0] == "sbatch"
    assert array[1:] == ["--parsable", "--export=ALL", "--array=1-3", "--partition=cpu", str(SLURM / script)]
    assert "--dependency=afterok:1001" in final  # the id without the ";cluster1" suffix
    (wrap,) = [a for a in final if a.startswith("--wrap=")]
    assert FINAL_COMMAND[script] in wrap
    assert "--shard" not in wrap
    assert "1001" in done.stdout and "1002" in done.stdout


def test_the_final_job_activates_the_virtual_environment_too(tmp_path: Path) -> None:
    env = {**_stand_ins(tmp_path), **RECIPE_ENV["preprocess_array.sbatch"], "VENV": str(tmp_path / "venv")}
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "activate").write_text("export ACTIVATED=1\n")
    assert _run("preprocess_array.sbatch", env).returncode == 0
    (wrap,) = [a for a in _calls(tmp_path)[1] if a.startswith("--wrap=")]
    assert wrap.startswith(f"--wrap=source {tmp_path / 'venv' / 'bin' / 'activate'} && ")


@pytest.mark.parametrize(
    ("script", "shard"),
    [("preprocess_array.sbatch", "slurm"), ("kmeans_predict_array.sbatch", "slurm"), ("sweep_array.sbatch", "slurm")],
)
def test_an_array_task_runs_its_shard(tmp_path: Path, script: str, shard: str) -> None:
    slurm = {
        "SLURM_JOB_ID": "1001",
        "SLURM_ARRAY_TASK_ID": "2",
        "SLURM_ARRAY_TASK_MIN": "0",
        "SLURM_ARRAY_TASK_COUNT": "4",
        "SLURM_CPUS_PER_TASK": "6",
    }
    env = {**_stand_ins(tmp_path), **RECIPE_ENV[script], **slurm}
    done = _run(script, env)
    assert done.returncode == 0, done.stderr
    ((program, *args),) = _calls(tmp_path)
    assert program == "python-stand-in" and args[:2] == ["-m", "radiossl"]
    assert args[args.index("--shard") + 1] == shard  # radiossl reads task 2 of 0..3 as shard 3/4
    assert args[args.index("--workers") + 1] == "6"
    if script == "sweep_array.sbatch":
        assert args.count("--weights") == 2 and args.count("--ratios") == 2


def test_a_missing_required_setting_is_named(tmp_path: Path) -> None:
    env = {**_stand_ins(tmp_path), "RAW": "/data/raw"}
    done = _run("preprocess_array.sbatch", env)
    assert done.returncode != 0 and "set PROC to the output folder" in done.stderr
    assert not _calls(tmp_path)


def test_multinode_pretraining_starts_one_torchrun_per_node_with_a_c10d_rendezvous(tmp_path: Path) -> None:
    slurm = {
        "SLURM_JOB_ID": "4242",
        "SLURM_NNODES": "2",
        "SLURM_JOB_NODELIST": "node-[a-b]",
        "SLURM_GPUS_PER_NODE": "h100:4",  # no SLURM_GPUS_ON_NODE: the count after the type is used
        "SLURM_CPUS_PER_TASK": "32",
    }
    env = {**_stand_ins(tmp_path), "PROC": "/shared/proc", "RUNS": "/shared/runs", **slurm}
    done = _run("pretrain_multinode.sbatch", env)
    assert done.returncode == 0, done.stderr
    scontrol, srun, torchrun = _calls(tmp_path)
    assert scontrol == ["scontrol", "show", "hostnames", "node-[a-b]"]
    assert srun[:2] == ["srun", "torchrun"]
    assert torchrun[1:8] == [
        "--nnodes=2",
        "--nproc_per_node=4",
        "--rdzv_backend=c10d",
        "--rdzv_endpoint=node-a:29500",
        "--rdzv_id=4242",
        "--max-restarts=0",
        "-m",
    ]
    command = " ".join(torchrun[8:])
    assert command == (
        "radiossl pretrain --method patch-cluster --data /shared/proc --out /shared/runs "
        "--workers 8 --amp bf16 --resume auto"
    )
