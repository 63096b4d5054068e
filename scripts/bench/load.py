"""echo's load benchmark: many clients at once, a mix of short and long files.

Run it with `scripts/load.sh` (which builds the release binaries, starts the local stack and
prepares the benchmark's virtual environment). A benchmark, not a test: nothing is asserted,
the targets are printed beside the figures as met or missed.

For each chunk-worker count (default 2 and 4), the pipeline runs as deployed locally (every
processor its own `echoctl run` process) and:
1. each class of file is submitted alone on the idle pipeline: its idle latency, and for long
   files their throughput alone;
2. the clients' schedule is played: every submission an `echoctl submit --wait --json` of its
   own, started at its seeded time; clips arrive all along, while the long files run.
It prints, per class, the latency p50/p95/p99 against the same file alone, the long files'
throughput against running alone, the workers' utilisation (whisper time over wall time),
the submissions rejected for deadlines and those stuck (no terminal event in time), and draws
each submission's latency over the time it was submitted as a chart.

The targets (issue 35): a 5-second clip's p95 within 2x its idle latency while long jobs run;
the throughput of the whole mix within 10 % of the longest file's alone (fair sharing must not
cost capacity; each long file itself takes longer, as it shares the workers); none rejected
for deadlines, none stuck.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench  # noqa: E402  (the speed benchmark's audio, pipeline and reporting helpers)

TARGET_CLIP_P95 = 2.0
TARGET_LONG_THROUGHPUT = 0.90


@dataclass
class Class:
    """A kind of file clients send."""

    name: str
    audio: bench.Audio
    long: bool


@dataclass
class Outcome:
    """One submission of the schedule."""

    cls: str
    at_s: float
    wall_s: float
    status: str
    reason: str


def repeated(source: bench.Audio, minutes: float, name: str) -> bench.Audio:
    """`source` played again and again for as long as the file stays within `minutes` (long
    files are many copies of the benchmark's speech: the same cost per minute, without
    synthesising hours; never longer, or the 3-hour file would pass echo's 3-hour limit)."""
    copies = max(1, int(minutes * 60 // source.seconds))
    path = bench.WORK / "audio" / f"load-{copies}x{source.path.stem}.wav"
    with wave.open(str(source.path), "rb") as w:
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    if not path.exists():
        bench.write_wav(path, [frames] * copies, rate)
    return bench.Audio(name, path, " ".join([source.text] * copies), source.seconds * copies)


def classes(scale: float) -> list[Class]:
    """The mix: 5-second clips, 5-minute files, 46-minute files and one 3-hour file; `scale`
    shortens the long ones for a quicker run."""
    base = bench.speech_of(5)
    return [
        Class("clip", bench.clip(), False),
        Class("5 min", base, False),
        Class("46 min", repeated(base, 46 * scale, f"{46 * scale:g} min"), True),
        Class("3 h", repeated(base, 180 * scale, f"{180 * scale:g} min"), True),
    ]


def schedule(seed: int, mix: list[Class], span_s: float) -> list[tuple[float, Class]]:
    """When each client submits what: the 3-hour file first, two 46-minute files soon after
    it, 5-minute files and clips at seeded random times over `span_s` seconds."""
    rng = random.Random(seed)
    by = {c.name: c for c in mix}
    plan = [(0.0, by["3 h"]), (rng.uniform(2, 10), by["46 min"]), (rng.uniform(10, 30), by["46 min"])]
    plan += [(rng.uniform(0, span_s), by["5 min"]) for _ in range(4)]
    # Clips arrive as a Poisson process, one every 8 s on average.
    t = rng.expovariate(1 / 8)
    while t < span_s:
        plan.append((t, by["clip"]))
        t += rng.expovariate(1 / 8)
    return sorted(plan, key=lambda p: p[0])


def submit(audio: bench.Audio, timeout_s: int) -> tuple[float, str, str]:
    """`echoctl submit --wait --json`: (wall s, status, reason)."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(bench.ECHOCTL), "submit", str(audio.path), "--wait", "--json", "--timeout-secs", str(timeout_s)],
        capture_output=True, text=True, env=bench.echo_env())
    wall = time.monotonic() - started
    try:
        report = json.loads(proc.stdout)
        return wall, report.get("status", "?"), str(report.get("reason") or "")
    except json.JSONDecodeError:
        return wall, "stuck", (proc.stderr.strip().splitlines() or ["no answer"])[-1]


def play(plan: list[tuple[float, Class]], timeout_s: int) -> list[Outcome]:
    """Starts every submission at its time, each on its own thread; waits for all."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def one(at: float, cls: Class) -> None:
        wall, status, reason = submit(cls.audio, timeout_s)
        with lock:
            outcomes.append(Outcome(cls.name, at, wall, status, reason))

    threads = []
    start = time.monotonic()
    for at, cls in plan:
        time.sleep(max(0.0, at - (time.monotonic() - start)))
        thread = threading.Thread(target=one, args=(at, cls))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return outcomes


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def whisper_s(pipeline: bench.Pipeline, since: int) -> float:
    """Seconds the workers spent in whisper on chunks logged after the first `since`."""
    return sum(int(r.get("whisper_ms", 0)) for r in pipeline.chunk_lines()[since:]) / 1000


def run(workers: int, mix: list[Class], seed: int, span_s: float, timeout_s: int,
        report: bench.Report, series: dict) -> None:
    pipeline = bench.Pipeline(workers, 1)
    label = f"{workers} chunk workers x 1 thread"
    try:
        pipeline.warm_up(bench.clip())
        idle: dict[str, float] = {}
        for cls in mix:
            runs = [submit(cls.audio, timeout_s)[0] for _ in range(3 if not cls.long else 1)]
            idle[cls.name] = statistics.median(runs)
        plan = schedule(seed, mix, span_s)
        logged = len(pipeline.chunk_lines())
        started = time.monotonic()
        outcomes = play(plan, timeout_s)
        wall = time.monotonic() - started
        busy = whisper_s(pipeline, logged)
    finally:
        pipeline.stop()

    rows = []
    for cls in mix:
        done = [o for o in outcomes if o.cls == cls.name and o.status == "ready"]
        walls = [o.wall_s for o in done]
        if not walls:
            rows.append([cls.name, 0, "—", "—", "—", bench.fmt(idle[cls.name], 2), "—"])
            continue
        rows.append([cls.name, len(walls), bench.fmt(pct(walls, 50), 2), bench.fmt(pct(walls, 95), 2),
                     bench.fmt(pct(walls, 99), 2), bench.fmt(idle[cls.name], 2),
                     f"{pct(walls, 95) / idle[cls.name]:.2f}x"])
        series[f"{cls.name}, {workers} workers"] = [(o.at_s, o.wall_s) for o in done]
    audio_s = sum(c.audio.seconds for _, c in plan)
    rejected = [o for o in outcomes if o.status == "rejected" and "timed out" in o.reason]
    failed = [o for o in outcomes if o.status not in ("ready", "stuck")]
    stuck = [o for o in outcomes if o.status == "stuck"]
    report.section(
        f"{label}: {len(plan)} submissions over {span_s:.0f} s (seed {seed})",
        bench.table(["class", "ready", "p50 s", "p95 s", "p99 s", "alone s", "p95 vs alone"], rows)
        + f"\n\nthroughput: {audio_s / wall:.1f} s of audio per second ({audio_s / 60:.0f} min in {wall:.0f} s); "
        f"workers in whisper {busy / (workers * wall):.0%} of the time; "
        f"not ready: {len(failed)}, of which rejected for deadlines {len(rejected)}; stuck {len(stuck)}"
        + "".join(f"\n- {o.cls} at {o.at_s:.0f} s: {o.status} {o.reason}" for o in failed + stuck))
    clips = [o.wall_s for o in outcomes if o.cls == "clip" and o.status == "ready"]
    if clips:
        ratio = pct(clips, 95) / idle["clip"]
        report.target(f"{label}: a clip's p95 within {TARGET_CLIP_P95:g}x its idle latency",
                      f"{ratio:.2f}x", ratio <= TARGET_CLIP_P95)
    # Sharing the workers fairly must not cost throughput: the whole mix is transcribed at
    # (nearly) the pace of the longest file alone. Each long file itself takes longer under
    # load, as it shares the workers (its p50 against alone, in the table).
    longest = max(mix, key=lambda c: c.audio.seconds)
    alone_pace = longest.audio.seconds / idle[longest.name]
    share = (audio_s / wall) / alone_pace
    report.target(f"{label}: throughput under load within 10 % of the {longest.name} file alone "
                  f"({alone_pace:.1f} s of audio per second)", f"{share:.0%}",
                  share >= TARGET_LONG_THROUGHPUT)
    report.target(f"{label}: none rejected for deadlines", str(len(rejected)), not rejected)
    report.target(f"{label}: none stuck", str(len(stuck)), not stuck)


def chart(out: Path, series: dict[str, list[tuple[float, float]]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, points in sorted(series.items()):
        xs, ys = zip(*sorted(points))
        ax.plot(xs, ys, marker="o", linestyle="none" if "clip" in name else "-", label=name, alpha=0.8)
    ax.set_xlabel("submitted at, seconds into the schedule")
    ax.set_ylabel("latency, seconds (log)")
    ax.set_yscale("log")
    ax.set_title("Latency under load (tiny.en, 1 thread per worker)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "load-latency.svg"
    fig.savefig(path, metadata={"Date": None})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="2,4", help="chunk-worker counts, comma-separated")
    parser.add_argument("--seed", type=int, default=35)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="length of the long files against 46 min and 3 h (0.25: 11.5 min and 45 min)")
    parser.add_argument("--span", type=float, default=240, help="seconds over which clips and 5-minute files arrive")
    parser.add_argument("--timeout", type=int, default=300,
                        help="seconds without any event of a submission before it counts as stuck")
    parser.add_argument("--out", type=Path, default=bench.WORK / "load")
    parser.add_argument("--echoctl", type=Path, default=bench.ECHOCTL,
                        help="the echoctl to run (another build, to compare; give it its own "
                             "ECHO_KAFKA__TOPIC_PREFIX, with its topics applied and schemas registered)")
    args = parser.parse_args()
    bench.ECHOCTL = args.echoctl

    mix = classes(args.scale)
    report = bench.Report(args.out)
    report.section("Machine", bench.machine())
    series: dict[str, list[tuple[float, float]]] = {}
    for workers in (int(w) for w in args.workers.split(",")):
        run(workers, mix, args.seed, args.span, args.timeout, report, series)
    report.section("Chart", str(chart(args.out, series)))
    report.finish()


if __name__ == "__main__":
    main()
