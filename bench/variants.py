"""Traditional Chinese editions benchmark: what `variants: [zh-tw, zh-hk]` adds to a build, in one run.

- a day's build: `feeder refresh` after 30 new seed files (a day of RFI 中文) land in a folder whose 10 000
  articles are already published, sections and archive pages included; with both variants against without
  them: target 1.5x. This is the build the service does all day.
- the first build: a full refresh of the 10 000 seeds into an empty state, with both variants against
  without; reported next to it (every document is rendered three times there, so rendering sets the ratio).

Each sample is a fresh interpreter (`python -m bench.variants --child ...`) timing only the refresh; the
contenders alternate, the best sample of each counts and every sample is printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import Figure, Samples, run_process, timed_refresh
from bench.corpus import write_corpus

ROOT = Path(__file__).resolve().parent.parent
ARTICLES, DAY = 10_000, 30
TARGET_RATIO = 1.5
MODES = {"without variants": "[]", "with zh-tw and zh-hk": "[zh-tw, zh-hk]"}


def figures(rounds: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="feeder-bench-variants-") as tmp:
        work = Path(tmp)
        corpus = work / "corpus"
        write_corpus(corpus, ARTICLES + DAY)
        names = sorted(p.name for p in corpus.iterdir())
        history, day = names[:ARTICLES], names[ARTICLES:]
        first = first_builds(work, corpus, history, max(2, rounds // 2))
        daily = day_builds(work, corpus, history, day, rounds)
    return [
        Figure(
            f"a day's build ({DAY} new of {ARTICLES} seeds), two variants vs none",
            daily.best("with zh-tw and zh-hk"),
            "s",
            f"<= {TARGET_RATIO:g}x without",
            daily.best("with zh-tw and zh-hk") <= TARGET_RATIO * daily.best("without variants"),
            floor=daily.best("without variants"),
        ),
        Figure(
            f"first build ({ARTICLES} new seeds), two variants vs none",
            first.best("with zh-tw and zh-hk"),
            "s",
            "reported",
            True,
            floor=first.best("without variants"),
            note="every document, archive pages included, is rendered once per edition",
        ),
    ]


def first_builds(work: Path, corpus: Path, history: list[str], rounds: int) -> Samples:
    seeds = work / "seeds-history"
    copy_seeds(corpus, history, seeds)
    samples = Samples()
    for _ in range(rounds):
        for mode, variants in MODES.items():
            state = work / "first"
            shutil.rmtree(state, ignore_errors=True)
            samples.add(mode, child(seeds, state, variants)["seconds"])
    samples.show(f"first build of {ARTICLES} seeds", "s")
    return samples


def day_builds(work: Path, corpus: Path, history: list[str], day: list[str], rounds: int) -> Samples:
    """Each mode's store and feeds are built once from the history; each sample starts from a copy of them."""
    snapshots: dict[str, Path] = {}
    for mode, variants in MODES.items():
        snapshot = work / f"snapshot-{len(snapshots)}"
        copy_seeds(corpus, history, snapshot / "seeds")
        child(snapshot / "seeds", snapshot / "build", variants)
        snapshots[mode] = snapshot
    samples = Samples()
    for _ in range(rounds):
        for mode, variants in MODES.items():
            sample = work / "day"
            shutil.rmtree(sample, ignore_errors=True)
            shutil.copytree(snapshots[mode], sample)
            copy_seeds(corpus, day, sample / "seeds")
            result = child(sample / "seeds", sample / "build", variants)
            if result["new"] != DAY - DAY // 10:  # one file in ten repeats an earlier article
                raise SystemExit(f"the day's build found {result['new']} new articles")
            samples.add(mode, result["seconds"])
    samples.show(f"a day's build, {DAY} new seeds", "s")
    return samples


def copy_seeds(corpus: Path, names: list[str], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(corpus / name, folder / name)


def child(seeds: Path, state: Path, variants: str) -> dict[str, float]:
    run = run_process([sys.executable, "-m", "bench.variants", "--child", str(seeds), str(state), variants], cwd=ROOT)
    if run.exit_code != 0:
        raise SystemExit(f"the refresh failed ({run.exit_code}):\n{run.output[-3000:]}")
    result: dict[str, float] = json.loads(run.output.splitlines()[0])
    print(f"    refresh, variants {variants}: {result['seconds']:.3f} s timed, {run.seconds:.2f} s whole", flush=True)
    return result


# In the child process ------------------------------------------------------------------------------------------


def refresh_child(seeds: Path, state: Path, variants: str) -> dict[str, float]:
    state.mkdir(parents=True, exist_ok=True)
    config = state / "config.yaml"
    config.write_text(
        f"output_dir: {state / 'public'}\nstate_dir: {state / 'state'}\nbase_url: http://127.0.0.1:8080/\n"
        f"sources:\n  - {{name: seeds, kind: seeds, path: {seeds}}}\n"
        f"feeds:\n  - {{name: rfi-cn, title: RFI 中文, description: 法国国际广播电台中文网, sources: [seeds],"
        f" variants: {variants}}}\n",
        encoding="utf-8",
    )
    seconds, counts = timed_refresh(config)
    return {"seconds": seconds, "new": counts["new"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", nargs=3, metavar=("SEEDS", "STATE", "VARIANTS"))
    args = parser.parse_args()
    if args.child:
        seeds, state, variants = args.child
        print(json.dumps(refresh_child(Path(seeds), Path(state), variants)))
        return
    from bench.common import print_table  # noqa: PLC0415

    print_table(figures(args.rounds))


if __name__ == "__main__":
    main()
