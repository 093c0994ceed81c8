"""A throwaway single-node SLURM cluster (Debian's SLURM 22.05 and munge), for the tests.

``Cluster(state_dir).start()`` writes a ``slurm.conf`` from ``slurm.conf.in`` and a fresh munge
key into ``state_dir`` (which must not exist yet: old state leaves orphans), then runs munged,
slurmctld and slurmd in the foreground as child processes (their pids are ours: no pid files, no
detached daemons) and waits until the node is idle. ``stop()`` cancels every job, stops the three
daemons by pid, waits for them, then SIGKILLs and returns any process of the cluster still alive
(a job step, a daemon that would not die): an empty list means everything ended cleanly.
``env()`` is the environment a sweep needs: ``SLURM_CONF`` and the sacct shim (``bin/sacct``)
first on PATH; sbatch passes both on to the jobs.

``unavailable()`` says why no cluster can run here (None when it can), installing the Debian
packages first when they are missing and we are root on Debian. From a shell::

    python tests/slurm/slurm_cluster.py check      # install if needed, or say why not (exit 0/1)
    python tests/slurm/slurm_cluster.py up DIR     # start one in DIR until Ctrl-C; prints its env
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "slurm.conf.in"
SHIM_DIR = HERE / "bin"

#: the Debian packages, and a program each one installs
PACKAGES = {
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "slurm-client": "sbatch",
    "munge": "munged",
}
APT_INSTALL = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
DEBIAN = Path("/etc/debian_version")


class ClusterError(RuntimeError):
    """The cluster did not come up (the message holds the daemons' log tails)."""


def _missing() -> list[str]:
    return [package for package, program in PACKAGES.items() if not _which(program)]


def _which(program: str) -> str | None:
    # the daemons live in /usr/sbin, which a non-login root shell may not have on PATH
    return shutil.which(program, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))


def unavailable(install: bool = True) -> str | None:
    """Why a cluster cannot run on this machine, or None when it can. Installs the missing
    Debian packages first (``apt-get``) when ``install`` and we are root on Debian."""
    missing = _missing()
    if os.geteuid() != 0:
        needs = f"; it also needs the packages {' '.join(missing)}" if missing else ""
        return f"not root: the daemons (slurmd, munged) must run as root{needs}"
    if not missing:
        return None
    wanted = " ".join(missing)
    if not (DEBIAN.exists() and shutil.which("apt-get")):
        return f"missing {wanted}, and this is not Debian with apt-get: install them yourself"
    if not install:
        return f"missing {wanted} (install: {' '.join(APT_INSTALL)})"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"slurm: installing {wanted} with apt-get", file=sys.stderr, flush=True)
    steps = (["apt-get", "update", "-q"], APT_INSTALL)
    for step in steps:
        try:
            done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"missing {wanted}; `{' '.join(step)}` did not run ({error})"
        if done.returncode != 0 or (step is APT_INSTALL and _missing()):
            tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
            return f"missing {wanted}; `{' '.join(step)}` failed (no network for apt?): {tail}"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _node_resources() -> tuple[int, int]:
    """CPUs and RealMemory (MB) no larger than what ``nproc`` and ``slurmd -C`` report."""
    report = subprocess.run(
        [_which("slurmd") or "slurmd", "-C"], capture_output=True, text=True, check=True
    ).stdout
    cpus = int(re.search(r"\bCPUs=(\d+)", report).group(1))
    memory = int(re.search(r"\bRealMemory=(\d+)", report).group(1))
    return min(cpus, len(os.sched_getaffinity(0))), memory


def _die_with_parent() -> None:
    """In the daemon's child process: SIGTERM it when the process that started it dies, so a
    killed test run leaves no daemon behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Cluster:
    """One single-node cluster living in ``state`` (see the module docstring)."""

    partition = "debug"

    def __init__(self, state: Path | str) -> None:
        self.state = Path(state).resolve()
        self.conf = self.state / "slurm.conf"
        self.node = socket.gethostname().split(".")[0]  # NodeName must be `hostname -s`
        self.processes: dict[str, subprocess.Popen] = {}

    # -- environment -----------------------------------------------------------------------------
    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: ours) with SLURM_CONF, and the sacct shim and /usr/sbin on PATH."""
        env = dict(os.environ if base is None else base)
        path = [str(SHIM_DIR), *env.get("PATH", os.defpath).split(os.pathsep), "/usr/sbin"]
        env["PATH"] = os.pathsep.join(dict.fromkeys(p for p in path if p))
        env["SLURM_CONF"] = str(self.conf)
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        """A SLURM client command against this cluster; its stdout. ``check=False``: "" when it
        fails or hangs (a client retries for a minute when the controller is gone)."""
        try:
            done = subprocess.run(
                args, env=self.env(), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            if check:
                raise
            return ""
        if check and done.returncode != 0:
            raise ClusterError(f"`{' '.join(args)}` failed: {done.stderr.strip()}")
        return done.stdout if done.returncode == 0 else ""

    # -- start -----------------------------------------------------------------------------------
    def _write_config(self) -> None:
        cpus, memory = _node_resources()
        values = {
            "STATE": str(self.state),
            "NODE": self.node,
            "CTLD_PORT": str(_free_port()),
            "SLURMD_PORT": str(_free_port()),
            "CPUS": str(cpus),
            "MEMORY": str(memory),
            "PARTITION": self.partition,
        }
        text = TEMPLATE.read_text()
        for key, value in values.items():
            text = text.replace(f"@{key}@", value)
        assert "@" not in re.sub(r"#.*", "", text), "slurm.conf.in has an unfilled @KEY@"
        self.conf.write_text(text)

    def _munge_dirs(self) -> Path:
        """A munge key and socket directory owned by the munge user (munged runs as it and
        checks both). The state directory must let it through (0755)."""
        munge = self.state / "munge"
        munge.mkdir()
        munge.chmod(0o755)  # munged: "execute permissions for all required" on the socket dir
        key = munge / "munge.key"
        subprocess.run(
            [_which("mungekey") or "mungekey", "--create", f"--keyfile={key}"],
            check=True,
            capture_output=True,
        )
        for path in (munge, key):
            shutil.chown(path, "munge", "munge")
        key.chmod(0o600)
        return munge

    def _spawn(self, name: str, args: list[str], **kwargs) -> None:
        log = (self.state / "log" / f"{name}.out").open("ab")
        self.processes[name] = subprocess.Popen(
            args,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the test run is the fixture's to handle
            preexec_fn=_die_with_parent,
            **kwargs,
        )
        log.close()

    def start(self, timeout: float = 60) -> Cluster:
        """Bring the cluster up in a fresh ``state`` directory; raise ClusterError if it does
        not reach an idle node within ``timeout`` seconds (nothing is left running then)."""
        self.state.mkdir(parents=True)  # fails on old state: stop it and wipe it first
        self.state.chmod(0o755)
        for parent in self.state.parents:  # munged (user munge) must reach its socket and key
            if not parent.stat().st_mode & 0o001:
                raise ClusterError(f"{parent} is not searchable by other users (munged): chmod o+x")
        for sub in ("log", "ctld", "slurmd"):
            (self.state / sub).mkdir()
        self._write_config()
        munge = self._munge_dirs()
        try:
            self._spawn(
                "munged",
                [
                    _which("munged") or "munged",
                    "--foreground",
                    f"--socket={munge / 'munge.socket'}",
                    f"--key-file={munge / 'munge.key'}",
                    f"--pid-file={munge / 'munged.pid'}",
                    f"--seed-file={munge / 'munged.seed'}",
                    f"--log-file={munge / 'munged.log'}",
                ],
                user="munge",
                group="munge",
                extra_groups=[],
            )
            self._wait(lambda: (munge / "munge.socket").exists(), timeout, "munged socket")
            self._spawn(
                "slurmctld", [_which("slurmctld") or "slurmctld", "-D", "-f", str(self.conf)]
            )
            self._wait(self._controller_up, timeout, "slurmctld to answer")
            self._spawn("slurmd", [_which("slurmd") or "slurmd", "-D", "-f", str(self.conf)])
            self._wait(self._node_idle, timeout, f"node {self.node} to be idle")
        except BaseException:
            self.stop()
            raise
        return self

    def _controller_up(self) -> bool:
        return (
            subprocess.run(
                ["scontrol", "ping"], env=self.env(), capture_output=True, timeout=10
            ).returncode
            == 0
        )

    def _node_idle(self) -> bool:
        state = self.run("sinfo", "--noheader", "--nodes", self.node, "-o", "%T", check=False)
        if state.strip().startswith("drain"):
            reason = self.run("sinfo", "-R", "--noheader", check=False).strip()
            raise ClusterError(f"node {self.node} is {state.strip()}: {reason}{self._logs()}")
        return state.strip() == "idle"

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise ClusterError(
                        f"{name} exited ({process.returncode}) while waiting for {what}"
                        + self._logs()
                    )
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"timed out after {timeout:.0f} s waiting for {what}" + self._logs()
                )
            time.sleep(0.2)

    def _logs(self, lines: int = 15) -> str:
        out = []
        for path in sorted(self.state.glob("log/*")) + sorted(self.state.glob("munge/*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            if text:
                out.append(f"\n--- {path} (last {len(text)} lines)\n" + "\n".join(text))
        return "".join(out)

    # -- jobs ------------------------------------------------------------------------------------
    def jobs(self) -> list[tuple[str, str]]:
        """(job id, state) of every job the controller still knows, finished ones included."""
        out = self.run(
            "squeue", "--noheader", "--all", "--states=all", "-o", "%i %T", check=False, timeout=10
        )
        return [tuple(line.split()) for line in out.splitlines() if line.strip()]

    def job_state(self, job_id: str) -> str:
        """The state of one job (``123`` or array task ``123_4``), as ``scontrol`` reports it."""
        out = self.run("scontrol", "--oneliner", "show", "job", job_id, check=False)
        found = re.search(r"\bJobState=(\S+)", out)
        return found.group(1) if found else "UNKNOWN"

    def final_states(self, job_ids: list[str], timeout: float = 60) -> dict[str, str]:
        """The state of each job once it has ended (a sweep returns when its jobs have written
        their results; their batch steps may still be completing)."""
        deadline = time.monotonic() + timeout
        while True:
            states = {job: self.job_state(job) for job in job_ids}
            ended = not set(states.values()) & {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING"}
            if ended or time.monotonic() > deadline:
                return states
            time.sleep(0.5)

    # -- stop ------------------------------------------------------------------------------------
    def stop(self, timeout: float = 30) -> list[str]:
        """Cancel every job and wait for its processes, stop the daemons (slurmd, slurmctld, then
        munged) by pid and wait for them; SIGKILL whatever of this cluster is still alive then.
        Returns those stragglers (empty: everything ended by itself)."""
        deadline = time.monotonic() + timeout
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self.run("scancel", "--full", "--user", "root", check=False)
            # a finished job's batch step may still be ending: slurmd must outlive it
            while time.monotonic() < deadline and (self._active_jobs() or self._steps()):
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(max(deadline - time.monotonic(), 10))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        grace = time.monotonic() + 10
        while self.leftovers() and time.monotonic() < grace:
            time.sleep(0.2)
        left = self.leftovers()
        for pid, _, _ in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return [f"{pid} {command}" for pid, _, command in left]

    def _active_jobs(self) -> list[str]:
        active = ("RUNNING", "COMPLETING", "PENDING", "SUSPENDED", "CONFIGURING")
        return [job for job, state in self.jobs() if state in active]

    def _steps(self) -> list[tuple[int, int, str]]:
        """Job processes still alive (slurmstepd, a job's own): not a daemon nor its child."""
        daemons = {p.pid for p in self.processes.values()}
        return [p for p in self.leftovers() if p[0] not in daemons and p[1] not in daemons]

    def leftovers(self) -> list[tuple[int, int, str]]:
        """(pid, parent pid, command) of every live process of this cluster: our daemons, the
        slurmstepd processes whose environment holds this cluster's SLURM_CONF (they detach
        from slurmd), and every descendant of those (a job's shell, srun, python)."""
        table = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
            if stat[0] != "Z":
                table[int(entry.name)] = (int(stat[1]), command)
        marker = f"SLURM_CONF={self.conf}".encode()
        roots = {p.pid for p in self.processes.values() if p.poll() is None}
        for pid, (_, command) in table.items():
            if command.startswith("slurmstepd"):
                with contextlib.suppress(OSError):
                    if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                        roots.add(pid)
        found = {pid for pid in roots if pid in table}
        grown = True
        while grown:
            more = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
            found |= more
            grown = bool(more)
        return sorted((pid, *table[pid]) for pid in found if pid != os.getpid())


def main(argv: list[str]) -> int:
    """``check``: can a cluster run here (installing the packages if needed)? ``up DIR``: start
    one in DIR (which must not exist), print its environment, keep it up until Ctrl-C."""
    if argv[:1] == ["check"] and len(argv) == 1:
        reason = unavailable()
        print(f"slurm: cannot run here: {reason}" if reason else "slurm: can run here")
        return 1 if reason else 0
    if argv[:1] == ["up"] and len(argv) == 2:
        if reason := unavailable():
            print(f"slurm: cannot run here: {reason}", file=sys.stderr)
            return 1
        cluster = Cluster(argv[1]).start()
        env = cluster.env()
        print(f"export SLURM_CONF={env['SLURM_CONF']} PATH={env['PATH']}")
        print(f"slurm: up, partition {cluster.partition}; Ctrl-C stops it", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            left = cluster.stop()
            print("slurm: stopped" + (f"; still running: {left}" if left else ""))
        return 0
    print("usage: slurm_cluster.py check | up DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
