"""The SLURM batch scripts in scripts/, submitted to a real one-node SLURM cluster.

The cluster (tests/slurm/cluster.py) is started once per test session from Debian's slurmctld,
slurmd and munge, with one GPU in its configuration, and stopped at the end, also when a test
fails. Each job asks for the script's own GPU and time limit but for one core and a little
memory, so it fits any test machine; PyTorch finds no CUDA device there and runs on the CPU.
Where SLURM is not installed these tests skip, naming the install command; in CI they fail.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from slurm.cluster import Cluster, unavailable_reason

from iml import common

SCRIPTS = {
    "input_opt": "src/input_opt.py",
    "integrated_gradients": "src/mnist_integrated.py",
    "train": "src/deepfake_interpretation.py",
}
# sbatch options on the command line override the script's #SBATCH lines: only these two change.
SMALL = ["--cpus-per-task=1", "--mem=2G"]
# A job that runs longer than this is cancelled and fails its test.
JOB_TIMEOUT = 240


def in_ci():
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def cluster():
    reason = unavailable_reason()
    if reason:
        if in_ci():
            pytest.fail(f"CI must run the SLURM tests, but: {reason}")
        pytest.skip(reason)
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def job_logs():
    """Log files of this test's jobs, deleted afterwards; a failed job keeps its logs for reading."""
    logs = []
    yield logs
    for path in logs:
        path.unlink(missing_ok=True)


def submit(cluster, job_logs, script, *options, cwd=common.ROOT):
    """Submit scripts/<script>.slurm with `options` for the script and return the finished job.

    The job is named slurm-test-<script>, so its logs are logs/slurm-test-<script>-<id>.out and .err.
    A job that did not complete with exit code 0 fails the test, showing its logs.
    """
    arguments = [*SMALL, f"--job-name=slurm-test-{script}", str(common.ROOT / "scripts" / f"{script}.slurm"), *options]
    job = cluster.submit(arguments, cwd=cwd, timeout=JOB_TIMEOUT)
    if not job.succeeded:
        pytest.fail(f"job {job.id} ({script}.slurm) ended {job.state} with exit code {job.exit_code}\n{job.log()}")
    job_logs.extend([job.stdout, job.stderr])
    return job


def assert_logs_in(job, folder, script):
    """The job wrote both its logs under `folder`, named by the script's --output/--error patterns."""
    for path in (job.stdout, job.stderr):
        assert path.parent == folder, f"job {job.id} wrote its log to {path}, not to {folder}"
        assert path.exists(), f"job {job.id} has no log {path}"
    assert job.stdout.name == f"slurm-test-{script}-{job.id}.out"
    assert job.stderr.name == f"slurm-test-{script}-{job.id}.err"


def assert_figures(job, out):
    figures = sorted(out.glob("*.png"))
    assert figures, f"job {job.id} wrote no figure into {out}\n{job.log()}"
    for figure in figures:
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{figure} is not a PNG"
    return figures


# --------------------------------------------------------------------------- the scripts as files


def sbatch_header(text):
    """The lines before the first command: the only part where SLURM reads #SBATCH lines."""
    header = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            break
        header.append(line)
    return header


def slurm_text(script):
    return (common.ROOT / "scripts" / f"{script}.slurm").read_text()


def code_lines(lines):
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_directives_come_first_and_are_explained(script):
    text = slurm_text(script)
    header = sbatch_header(text)
    directives = [line for line in header if line.startswith("#SBATCH")]
    later = [line for line in text.splitlines()[len(header) :] if line.lstrip().startswith("#SBATCH")]
    assert not later, f"SLURM ignores #SBATCH lines after the first command: {later}"
    options = dict(line.split()[1].split("=", 1) for line in directives)
    for option in ("--job-name", "--gres", "--cpus-per-task", "--mem", "--time", "--output", "--error"):
        assert option in options, f"{script}.slurm sets no {option}"
    assert options["--gres"] == "gpu:1"
    assert (options["--output"], options["--error"]) == ("logs/%x-%j.out", "logs/%x-%j.err")
    for line in directives:
        assert re.search(r"\s#\s\S", line), f"{script}.slurm: this line has no comment: {line}"
    assert any("SITE" in line and "--partition" in line for line in header), "the partition line is not marked SITE"
    assert text.splitlines()[len(header)] == "set -euo pipefail"
    run_line = code_lines(text.splitlines())[-1]
    assert run_line.startswith(f'exec bash "$launcher" srun python -u {SCRIPTS[script]} '), run_line
    assert run_line.endswith(' "$@"'), f"{script}.slurm does not pass its options on: {run_line}"
    assert (common.ROOT / SCRIPTS[script]).exists(), f"{script}.slurm runs {SCRIPTS[script]}, which does not exist"
    assert len(text.splitlines()) <= 30, f"{script}.slurm has {len(text.splitlines())} lines; at most 30"


def test_scripts_differ_only_in_what_differs():
    """After the #SBATCH header the scripts share a few lines that find scripts/launch.sh, where all
    they have in common lives, and differ only in the Python script and its fixed options."""
    bodies = {}
    for script in SCRIPTS:
        lines = slurm_text(script).splitlines()
        body = code_lines(lines[len(sbatch_header(slurm_text(script))) :])
        assert body[-1].startswith('exec bash "$launcher" srun python -u ')
        bodies[script] = body[:-1]
    assert len({tuple(body) for body in bodies.values()}) == 1, f"the scripts' shared lines differ: {bodies}"
    # Six or more lines in common would be a copied block: more belongs in scripts/launch.sh.
    assert len(bodies["train"]) + 1 <= 5, bodies["train"]
    assert (common.ROOT / "scripts" / "launch.sh").is_file()


def test_train_script_runs_the_exercise_split_and_says_where_the_faces_come_from():
    text = slurm_text("train")
    run_line = code_lines(text.splitlines())[-1]
    assert '--fast --train-size 67000 --val-size 1000 --test-size 2000 "$@"' in run_line, run_line
    assert "python -m iml ffhq-download" in text


def test_logs_folder_is_in_the_repository():
    """SLURM does not create the --output folder; a job whose log folder is missing fails unseen."""
    tracked = subprocess.run(["git", "ls-files", "logs"], cwd=common.ROOT, capture_output=True, text=True).stdout
    if tracked == "" and not (common.ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    assert "logs/.gitkeep" in tracked.split()


# --------------------------------------------------------------------------- without SLURM


def bash(script_path, *options, cwd, env=None):
    env = {key: value for key, value in (env or os.environ).items() if not key.startswith("SLURM_")}
    return subprocess.run(
        ["bash", str(script_path), *options], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_bash_runs_the_script_from_any_folder(tmp_path):
    """Outside SLURM the script runs Python directly, from the repository root."""
    result = bash(common.ROOT / "scripts" / "integrated_gradients.slurm", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"job (not under SLURM) on {os.uname().nodename}, in {common.ROOT}, with " in result.stdout
    assert "usage: mnist_integrated.py" in result.stdout


def test_bash_copy_finds_the_repository_and_its_environment_through_variables(tmp_path):
    """A copy outside the repository (as sbatch makes one) needs INTERPRETABLE_ML_ROOT or a hint;
    INTERPRETABLE_ML_VENV is activated even when PATH leads to another Python."""
    copy = tmp_path / "copy.slurm"
    shutil.copy(common.ROOT / "scripts" / "integrated_gradients.slurm", copy)
    lost = bash(copy, "--help", cwd=tmp_path)
    assert lost.returncode == 1
    assert lost.stderr == (
        f"error: cannot find the repository (no {tmp_path}/../scripts/launch.sh); set INTERPRETABLE_ML_ROOT.\n"
    )

    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").exists():
        pytest.skip("the tests do not run in a virtual environment")
    env = {
        **os.environ,
        "INTERPRETABLE_ML_ROOT": str(common.ROOT),
        "INTERPRETABLE_ML_VENV": str(venv),
        "PATH": "/usr/bin:/bin",
    }
    found = bash(copy, "--help", cwd=tmp_path, env=env)
    assert found.returncode == 0, found.stderr
    assert f"in {common.ROOT}, with {venv}/bin/python\n" in found.stdout
    assert "usage: mnist_integrated.py" in found.stdout


def test_bash_refuses_a_missing_virtual_environment(tmp_path):
    env = {**os.environ, "INTERPRETABLE_ML_VENV": str(tmp_path / "nowhere")}
    result = bash(common.ROOT / "scripts" / "integrated_gradients.slurm", "--help", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: INTERPRETABLE_ML_VENV={tmp_path / 'nowhere'} is not a virtual environment (it has no bin/activate).\n"
    )


def test_launcher_gives_pytorch_the_jobs_cores_and_drops_srun_outside_a_job(tmp_path):
    """OMP_NUM_THREADS follows SLURM_CPUS_PER_TASK (unless set); without a job, srun and its options go."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "OMP_", "SRUN_"))}
    show = "import os; print(os.environ['OMP_NUM_THREADS'], os.environ['SRUN_CPUS_PER_TASK'])"
    command = ["bash", str(common.ROOT / "scripts" / "launch.sh"), "srun", "--ntasks=1", "python", "-c", show]
    result = subprocess.run(
        command, cwd=tmp_path, env={**env, "SLURM_CPUS_PER_TASK": "3"}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "3 3"


# --------------------------------------------------------------------------- on the cluster


def test_cluster_runs_a_gpu_job_and_reports_failures(cluster, tmp_path):
    output = ["--output", str(tmp_path / "%x-%j.out")]
    job = cluster.submit(
        [*SMALL, "--gres=gpu:1", *output, "--wrap", "srun hostname; echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"],
        cwd=tmp_path,
    )
    assert job.succeeded, job.log()
    assert job.record["TresPerNode"] == "gres:gpu:1"
    assert job.stdout.read_text().splitlines() == [cluster.host, "CUDA_VISIBLE_DEVICES=0"]

    failed = cluster.submit([*SMALL, *output, "--wrap", "echo about to fail; exit 3"], cwd=tmp_path)
    assert (failed.state, failed.exit_code, failed.succeeded) == ("FAILED", "3:0", False)
    assert failed.stdout.read_text() == "about to fail\n"


def test_training_job_submitted_from_another_folder(cluster, job_logs, tmp_path):
    """`sbatch .../scripts/integrated_gradients.slurm --train-only ...` from outside the repository:
    sbatch runs a spooled copy of the script, which still finds the repository it came from, and
    the options reach the Python script."""
    (tmp_path / "logs").mkdir()
    weights = tmp_path / "weights.pth"
    job = submit(
        cluster,
        job_logs,
        "integrated_gradients",
        *("--train-only", "--retrain", "--weights", str(weights), "--epochs", "1"),
        *("--train-size", "2000", "--val-size", "0", "--batch-size", "100", "--out", str(tmp_path)),
        cwd=tmp_path,
    )
    assert_logs_in(job, tmp_path / "logs", "integrated_gradients")
    # The script's own #SBATCH lines were read: its GPU and time limit, not sbatch's defaults.
    assert job.record["TresPerNode"] == "gres:gpu:1"
    assert job.record["TimeLimit"] == "00:30:00"
    log = job.stdout.read_text()
    assert log.startswith(f"job {job.id} on {cluster.host}, in {common.ROOT}, with ")
    assert "training on 2000 digits, validating on 0, device cpu, epochs: 1" in log
    accuracy = float(re.search(r"test accuracy ([\d.]+)% on 10000 test digits", log).group(1))
    assert accuracy > 50, log  # one epoch on 2,000 digits; chance is 10%
    assert f"saved {common.relative(weights)}" in log
    assert weights.exists()


# The MNIST jobs, submitted from the repository root: logs in its logs/, figures in --out.
MNIST_JOBS = {
    "integrated_gradients": ["--per-class", "1", "--steps", "16", "--device", "auto"],
    "input_opt": ["--neuron", "3", "--init", "ones", "--steps", "20"],
}


@pytest.mark.parametrize("script", MNIST_JOBS)
def test_mnist_job(cluster, job_logs, tmp_path, script):
    options = ["--weights", str(common.WEIGHTS_PATH), *MNIST_JOBS[script], "--seed", "0", "--out", str(tmp_path)]
    job = submit(cluster, job_logs, script, *options)
    assert_logs_in(job, common.LOGS_DIR, script)
    assert_figures(job, tmp_path)


def test_deepfake_train_job(cluster, job_logs, tmp_path):
    """`sbatch scripts/train.slurm` on a small stand-in for the FFHQ / StyleGAN faces."""
    data = tmp_path / "faces"
    made = subprocess.run(
        [sys.executable, "-m", "iml", "ffhq-standin", "--out", str(data), "--per-class", "24", "--seed", "0"],
        cwd=common.ROOT,
        env={**os.environ, "PYTHONPATH": str(common.ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    out = tmp_path / "figures"
    job = submit(
        cluster,
        job_logs,
        "train",
        *("--data", str(data), "--train-size", "16", "--val-size", "4", "--test-size", "4"),
        *("--epochs", "1", "--batch-size", "8", "--workers", "1", "--seed", "0", "--out", str(out)),
    )
    assert_logs_in(job, common.LOGS_DIR, "train")
    assert_figures(job, out)
