"""A real one-node SLURM cluster for the test suite, built from Debian's packages.

    sudo apt-get install slurmctld slurmd slurm-client munge
    sudo .venv/bin/python tests/slurm/cluster.py      # start one by hand; Enter stops it

tests/test_slurm.py starts one per test session. Everything lives in a fresh temporary state
folder: slurm.conf and gres.conf (filled in from the templates beside this file), a munge key
made by mungekey, munged's socket, the daemons' spool folders and logs. The daemons run with
their own ports and munge socket, so they never touch a SLURM or munge already on the machine;
clients find the cluster through SLURM_CONF, which `Cluster.env` sets.

Root is needed: slurmd starts jobs as the submitting user and munged runs as the munge user.
"""

import contextlib
import os
import random
import re
import shlex
import shutil
import socket
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTALL_COMMAND = "sudo apt-get update && sudo apt-get install -y slurmctld slurmd slurm-client munge"
# The daemons live in /usr/sbin, which an ordinary user's PATH may lack.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
FINISHED = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
}
PROGRAMS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "sinfo", "scancel")


def which(program):
    return shutil.which(program, path=SEARCH_PATH)


def unavailable_reason():
    """Why a cluster cannot be started here, or None when it can."""
    missing = [program for program in PROGRAMS if which(program) is None]
    if missing:
        return f"SLURM is not installed (missing {', '.join(missing)}); install it with: {INSTALL_COMMAND}"
    if os.geteuid() != 0:
        return "starting a SLURM cluster needs root (slurmd runs jobs as their user, munged as munge); run the tests as root"
    return None


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def total_memory_mb():
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("/proc/meminfo has no MemTotal line")


def tail(path, lines=40):
    """The last `lines` lines of a text file, or a note that it is missing."""
    path = Path(path)
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Job:
    """A finished job as the controller recorded it (`scontrol show job`)."""

    id: int
    name: str
    state: str  # COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
    exit_code: str  # "status:signal", "0:0" for success
    stdout: Path
    stderr: Path
    record: dict  # every Key=Value of `scontrol show job`

    @property
    def succeeded(self):
        return self.state == "COMPLETED" and self.exit_code == "0:0"

    def log(self, lines=60):
        """The end of the job's stdout and stderr, to show when it failed."""
        return f"--- {self.stdout} ---\n{tail(self.stdout, lines)}\n--- {self.stderr} ---\n{tail(self.stderr, lines)}"


class Cluster:
    """One slurmctld, one slurmd with one (fake) GPU, and their own munged, in a temporary folder."""

    def __init__(self, state_dir=None):
        self.state = Path(state_dir or tempfile.mkdtemp(prefix="slurm-test-"))
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.state / "slurm.conf"
        self.munge_dir = self.state / "munge"
        self.processes = {}
        self.submitted = []

    @property
    def env(self):
        """The environment for SLURM clients (and, through sbatch, for the jobs) of this cluster.

        SLURM_* variables of an outer job (tests run inside an allocation) would leak into ours.
        """
        env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
        return {**env, "SLURM_CONF": str(self.conf), "PATH": SEARCH_PATH}

    def start(self, timeout=60):
        # Other users (munge) must reach the folder; mkdtemp makes it 0700.
        self.state.chmod(0o755)
        self.write_config()
        self.start_munge()
        for name in ("slurmctld", "slurmd"):
            (self.state / name).mkdir(mode=0o755)
        self.spawn("slurmctld", [which("slurmctld"), "-D", "-f", str(self.conf)])
        self.spawn("slurmd", [which("slurmd"), "-D", "-f", str(self.conf), "-N", self.host])
        self.wait_until_idle(timeout)

    def write_config(self):
        values = {
            "host": self.host,
            "address": "127.0.0.1",
            "ctld_port": free_port(),
            "slurmd_port": free_port(),
            "munge_socket": self.munge_dir / "munge.socket",
            "state": self.state,
            "first_job_id": random.randrange(1_000, 60_000_000, 1_000),
            "cpus": len(os.sched_getaffinity(0)),  # what nproc says
            # Below the machine's memory, as slurmd drains a node that reports less than configured.
            "real_memory": int(total_memory_mb() * 0.8),
        }
        for name in ("slurm.conf", "gres.conf"):
            template = string.Template((HERE / f"{name}.in").read_text())
            (self.state / name).write_text(template.substitute(values))

    def start_munge(self):
        """Make a key with mungekey and start munged as the munge user, on a socket in our folder."""
        self.munge_dir.mkdir(mode=0o755)
        shutil.chown(self.munge_dir, "munge", "munge")
        key = self.munge_dir / "munge.key"
        self.run_as_munge([which("mungekey"), "--create", f"--keyfile={key}"])
        self.spawn(
            "munged",
            [
                which("munged"),
                "--foreground",
                f"--socket={self.munge_dir / 'munge.socket'}",
                f"--key-file={key}",
                f"--pid-file={self.munge_dir / 'munged.pid'}",
                f"--seed-file={self.munge_dir / 'munged.seed'}",
                f"--log-file={self.munge_dir / 'munged.log'}",
            ],
            user="munge",
        )
        self.wait_for(lambda: (self.munge_dir / "munge.socket").exists(), 10, "munged to open its socket")

    def run_as_munge(self, command):
        result = subprocess.run(command, user="munge", group="munge", extra_groups=[], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{shlex.join(command)} failed: {result.stderr.strip()}")

    def spawn(self, name, command, user=None):
        output = open(self.state / f"{name}.out", "w")  # noqa: SIM115 - closed when the daemon stops
        ids = {"user": user, "group": user, "extra_groups": []} if user else {}
        self.processes[name] = (subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, **ids), output)

    def wait_for(self, condition, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, (process, _) in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with status {process.returncode}\n{self.diagnostics()}")
            if condition():
                return
            time.sleep(0.2)
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}\n{self.diagnostics()}")

    def node_state(self):
        result = self.client(["sinfo", "--noheader", "--nodes", self.host, "--format", "%T"], check=False)
        return result.stdout.strip()

    def wait_until_idle(self, timeout):
        self.wait_for(lambda: self.node_state() == "idle", timeout, f"node {self.host} to become idle")

    def client(self, command, check=True, **kwargs):
        result = subprocess.run(
            [which(command[0]), *command[1:]], env=self.env, capture_output=True, text=True, **kwargs
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{shlex.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def diagnostics(self):
        parts = [f"state folder {self.state}"]
        for name in ("munge/munged.log", "slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out", "munged.out"):
            parts.append(f"--- {name} ---\n{tail(self.state / name, 20)}")
        return "\n".join(parts)

    def submit(self, arguments, cwd, timeout=300):
        """Submit a job with sbatch from `cwd`, wait for it to end and return it as recorded.

        `arguments` are sbatch's, then the script and its own options. A job still running after
        `timeout` seconds is cancelled and returned as it then stands.
        """
        result = self.client(["sbatch", "--parsable", *arguments], cwd=cwd)
        job_id = int(result.stdout.strip().split(";")[0])  # "id" or "id;cluster"
        self.submitted.append(job_id)
        # Polling ourselves: `sbatch --wait` looks only every 10 s, which would dominate short jobs.
        deadline, cancelled = time.monotonic() + timeout, False
        while (job := self.job(job_id)).state not in FINISHED:
            if time.monotonic() > deadline:
                if cancelled:
                    raise RuntimeError(f"job {job_id} did not end after scancel\n{self.diagnostics()}")
                self.client(["scancel", str(job_id)], check=False)
                deadline, cancelled = time.monotonic() + 30, True
            time.sleep(0.25)
        return job

    def job(self, job_id):
        """The controller's record of a job (kept for MinJobAge after it ends)."""
        record = self.client(["scontrol", "show", "job", "--oneliner", str(job_id)]).stdout
        fields = dict(re.findall(r"(\w+)=(\S*)", record))
        return Job(
            id=job_id,
            name=fields["JobName"],
            state=fields["JobState"],
            exit_code=fields["ExitCode"],
            stdout=Path(fields["StdOut"]),
            stderr=Path(fields.get("StdErr", fields["StdOut"])),
            record=fields,
        )

    def stop(self):
        """Cancel our jobs, stop the daemons (slurmd, slurmctld, munged) and delete the state folder."""
        if self.submitted and "slurmctld" in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.client(["scancel", *map(str, self.submitted)], check=False, timeout=30)
        for name in ("slurmd", "slurmctld", "munged"):
            if name not in self.processes:
                continue
            process, output = self.processes.pop(name)
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            output.close()
        shutil.rmtree(self.state, ignore_errors=True)


def main():
    reason = unavailable_reason()
    if reason:
        sys.exit(f"error: {reason}")
    cluster = Cluster()
    try:
        cluster.start()
        print(f"SLURM cluster up, node {cluster.host}; in another shell run:")
        print(f"    export SLURM_CONF={cluster.conf}")
        print("    sinfo; sbatch scripts/integrated_gradients.slurm --train-only")
        input("press Enter to stop it ")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
