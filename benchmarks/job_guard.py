"""What the job guard and its bubblewrap sandbox cost per served job.

Starts three distccd on loopback ports, as the daemon starts one (as user distccd when
run as root, TMPDIR a private job directory):

  (a) plain: distccd's own compiler whitelist, no guard;
  (b) guard: DISTCC_CMDLIST naming the guard scripts, rendered from the daemon's rules,
      but ending in `exec COMPILER` instead of bwrap;
  (c) guard + sandbox: the scripts the daemon installs (`guard_files.install_guard`).

Then, in rounds, sends each the same tiny real compile (`distcc gcc -c`, DISTCC_FALLBACK=0,
so a job that did not run remotely fails the benchmark) and times it end to end; the
three are interleaved in every round so that the machine's noise falls on all alike.
Prints each median and the differences (the issue's target: (c) - (a) <= 5 ms).  The
job directories go on a tmpfs (`--dir`, default /dev/shm) as the daemon's do (/run):
then the compiler's temporary files land on a tmpfs in every variant, as in the
sandbox's private /tmp, and only the guard's and the sandbox's own cost is compared.  It also
times the guard script alone and bwrap alone (both ending in /bin/true), for the split.

    sudo .venv/bin/python benchmarks/job_guard.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc.core.job_guard_sh import render_guard, sandbox_argv
from p2pcc.daemon.distccd.guard_files import (
    GuardPaths,
    find_bwrap,
    install_guard,
    offered_compilers,
    system_dirs,
    whitelist_names,
)

BASE_PORT = 36400
SOURCE = "int tiny(int x) { return x * 7 + 1; }\n"
ENV = {"PATH": "/usr/bin:/bin"}


def distccd_user() -> pwd.struct_passwd | None:
    return pwd.getpwnam("distccd") if os.geteuid() == 0 else None


def prepare(root: Path, user: pwd.struct_passwd | None) -> dict[str, dict[str, str]]:
    """The three variants' environments (their guard files written under `root`)."""
    compilers = offered_compilers(whitelist_names(), ENV)
    bwrap = find_bwrap(ENV)
    variants: dict[str, dict[str, str]] = {}
    for name in ("plain", "guard", "guard+bwrap"):
        distccd_dir = root / name / "distccd"
        distccd_dir.mkdir(parents=True)
        paths = GuardPaths.beside(distccd_dir)
        install_guard(paths, compilers, bwrap, user)
        if user is not None:
            os.chown(distccd_dir, user.pw_uid, user.pw_gid)
        if name == "guard":  # the same checks, then the compiler itself, unsandboxed
            for compiler_name, compiler in compilers.items():
                script = render_guard(
                    compiler_name=compiler_name,
                    job_dir=str(paths.job_dir),
                    report_file=str(paths.report_file),
                    sandbox=[compiler],
                )
                (paths.guard_dir / compiler_name).write_text(script)
        env = {**ENV, "TMPDIR": str(paths.job_dir)}
        if name != "plain":
            env["DISTCC_CMDLIST"] = str(paths.cmdlist)
        variants[name] = env
    return variants


def start(root: Path, variants: dict[str, dict[str, str]], user: pwd.struct_passwd | None) -> None:
    for index, (name, env) in enumerate(variants.items()):
        log_dir = root / name / "distccd"
        argv = ["distccd", "--daemon", "--listen", "127.0.0.1", "--port", str(BASE_PORT + index)]
        argv += ["--allow", "127.0.0.1/32", "--jobs", "2", "--log-file", str(log_dir / "log")]
        argv += ["--log-level", "info"]
        argv += ["--pid-file", str(log_dir / "pid")]
        if user is not None:
            argv += ["--user", user.pw_name]
        subprocess.run(argv, env=env, check=True, timeout=10)  # returns once it listens


def stop(root: Path, variants: dict[str, dict[str, str]]) -> None:
    for name in variants:
        pid_file = root / name / "distccd" / "pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        subprocess.run(["pkill", "--signal", "TERM", "--session", str(pid)], check=False)


def check_routes(root: Path, variants: dict[str, dict[str, str]]) -> None:
    """Each distccd ran its job through what it should: the guard's path in the job's
    summary line exactly where a guard is configured."""
    for name in variants:
        text = (root / name / "distccd" / "log").read_text()
        summaries = [line for line in text.splitlines() if "COMPILE_OK" in line]
        guarded = any(str(root / name / "guard") in line for line in summaries)
        if not summaries or guarded != (name != "plain"):
            sys.exit(f"distccd {name} did not run its job as expected:\n{text[-2000:]}")


def server_times(root: Path, variants: dict[str, dict[str, str]]) -> dict[str, list[int]]:
    """The `time:NNms` of each variant's COMPILE_OK job summaries (distccd's own timing,
    from the request read to the reply sent)."""
    found = {}
    for name in variants:
        text = (root / name / "distccd" / "log").read_text()
        found[name] = [int(m) for m in re.findall(r"COMPILE_OK .* time:(\d+)ms", text)]
    return found


def one_job(work: Path, port: int) -> float:
    """Seconds for one remote compile of SOURCE to the distccd on `port`."""
    env = dict(os.environ, DISTCC_HOSTS=f"127.0.0.1:{port}/1", DISTCC_FALLBACK="0")
    env["DISTCC_DIR"] = str(work / "distcc")
    started = time.perf_counter()
    subprocess.run(
        ["distcc", "gcc", "-O2", "-c", str(work / "tiny.c"), "-o", str(work / "tiny.o")],
        env=env,
        check=True,
        timeout=60,
    )
    return time.perf_counter() - started


def timed(command: Sequence[str], user: pwd.struct_passwd | None) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        subprocess.run(
            command,
            check=True,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
            cwd="/",
            timeout=10,
        )
        return time.perf_counter() - started

    return run


def pieces(root: Path, user: pwd.struct_passwd | None) -> dict[str, Callable[[], float]]:
    """The guard alone and bwrap alone, each ending in /bin/true, as distccd's user."""
    job = root / "pieces"
    job.mkdir(mode=0o755)
    (job / "distccd_12345678.i").write_text(SOURCE)
    (job / "distccd_87654321.o").write_text("")
    script = job / "guard"
    text = render_guard(
        compiler_name="gcc", job_dir=str(job), report_file="/dev/null", sandbox=["/bin/true"]
    )
    script.write_text(text)
    script.chmod(0o755)
    args = ["-O2", "-c", str(job / "distccd_12345678.i"), "-o", str(job / "distccd_87654321.o")]
    bwrap = sandbox_argv(find_bwrap(ENV), system_dirs(), str(job), "/bin/true")
    files = {"$in": args[2], "$out": args[4]}
    return {
        "/bin/true": timed(["/bin/true"], user),
        "guard script -> /bin/true": timed([str(script), *args], user),
        "bwrap sandbox -> /bin/true": timed([files.get(word, word) for word in bwrap], user),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument(
        "--dir",
        default="/dev/shm",  # noqa: S108 - a directory of our own is made inside
        help="where the job directories go (default /dev/shm, a tmpfs like /run, where the "
        "daemon keeps them: a compiler's own temporary files then land on a tmpfs in all "
        "three variants, as they do in the sandbox's private /tmp)",
    )
    args = parser.parse_args(argv)
    if not (shutil.which("distcc") and shutil.which("distccd")):
        sys.exit("distcc and distccd are needed (apt install distcc)")
    user = distccd_user()
    root = Path(tempfile.mkdtemp(prefix="p2pcc-guard-bench-", dir=args.dir))
    root.chmod(0o755)
    variants = prepare(root, user)
    work = root / "client"
    (work / "distcc").mkdir(parents=True)
    (work / "tiny.c").write_text(SOURCE)
    times: dict[str, list[float]] = {name: [] for name in variants}
    parts = pieces(root, user)
    part_times: dict[str, list[float]] = {name: [] for name in parts}
    try:
        start(root, variants, user)
        for index in range(len(variants)):  # warm-up, and a check each one serves
            one_job(work, BASE_PORT + index)
        check_routes(root, variants)
        for _ in range(args.rounds):
            for index, name in enumerate(variants):
                times[name].append(one_job(work, BASE_PORT + index))
            for name, run in parts.items():
                part_times[name].append(run())
        server = server_times(root, variants)
    finally:
        stop(root, variants)
        shutil.rmtree(root, ignore_errors=True)
    report(times, part_times, args.rounds, user)
    print("distccd's own time per job (its log's `time:`, whole ms), median:")
    for name, values in server.items():
        print(f"  {name:<14} {statistics.median(values):6.1f} ms over {len(values)} jobs")
    print(f"job directories under {args.dir}; load average {os.getloadavg()[0]:.2f} at the end")


def report(
    times: dict[str, list[float]],
    part_times: dict[str, list[float]],
    rounds: int,
    user: pwd.struct_passwd | None,
) -> None:
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    who = user.pw_name if user else "the current user"
    print(f"per-job wall time, tiny `distcc gcc -O2 -c` on loopback, {rounds} rounds, as {who}:")
    for name, value in medians.items():
        print(f"  {name:<14} median {value:7.2f} ms")
    plain = medians["plain"]
    print("differences: of the medians, and the median of each round's difference (paired):")
    for name, label in (
        ("guard", "guard only      (b)-(a)"),
        ("guard+bwrap", "guard + sandbox (c)-(a)"),
    ):
        paired = statistics.median(x - y for x, y in zip(times[name], times["plain"], strict=True))
        print(f"  {label}: {medians[name] - plain:+6.2f} ms, paired {paired * 1000:+6.2f} ms")
    print("  (target for (c)-(a): <= 5 ms)")
    print("the pieces alone (fork+exec from Python, median):")
    for name, values in part_times.items():
        print(f"  {name:<28} {statistics.median(values) * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
