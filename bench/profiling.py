"""Summarise a py-spy profile (``py-spy record --format raw``: collapsed stacks) as text.

    python -m bench.profiling bench/results/<date>-<scenario>-n200.collapsed.gz

Why a summary and not only a flame graph: the numbers go into docs/PERFORMANCE.md and into
review comments, so "which layers and functions take the server's CPU" must be readable as
a table. Two views: *self* time per function (the leaf frame of each sample) and
*inclusive* time per layer (a sample counts for every layer that appears in its stack).
The collapsed file (gunzipped) loads into speedscope or flamegraph.pl for the picture.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

# Layer of a frame, by the file it is in (first match wins).
LAYERS: tuple[tuple[str, str], ...] = (
    ("cirkelline (chat/)", r"(^|/)chat/"),
    ("bench (harness)", r"(^|/)bench/"),
    ("agno", r"(^|/)agno/"),
    ("openai SDK", r"(^|/)openai/"),
    ("httpx/httpcore (provider HTTP client)", r"(^|/)(httpx2?|httpcore2?|h11|anyio)/"),
    ("pydantic", r"(^|/)pydantic"),
    ("django", r"(^|/)django/"),
    ("asgiref", r"(^|/)asgiref/"),
    ("daphne/twisted", r"(^|/)(daphne|twisted|autobahn)/"),
    ("uvicorn", r"(^|/)uvicorn/"),
    ("starlette/fastapi", r"(^|/)(starlette|fastapi)/"),
    ("sqlalchemy", r"(^|/)sqlalchemy/"),
    ("psycopg", r"(^|/)psycopg"),
    ("sqlite3", r"sqlite3"),
    ("redis", r"(^|/)redis/"),
    ("logging", r"(^|/)logging/"),
    ("json", r"(^|/)json/"),
    ("copy.deepcopy", r"(^|/)copy\.py$"),
    ("inspect", r"(^|/)inspect\.py$"),
    ("enum", r"(^|/)enum\.py$"),
    ("asyncio", r"(^|/)asyncio/"),
)
_FRAME_RE = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse_collapsed(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    """(frames root->leaf, sample count) per line; process/thread pseudo-frames dropped."""
    stacks = []
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        stacks.append((frames, int(count)))
    return stacks


def _split(frame: str) -> tuple[str, str]:
    found = _FRAME_RE.match(frame)
    if not found:
        return frame, ""
    return found.group("func"), found.group("file") or ""


def layer_of(frame: str) -> str | None:
    _, file = _split(frame)
    for name, pattern in LAYERS:
        if re.search(pattern, file):
            return name
    return None


def _short(frame: str) -> str:
    func, file = _split(frame)
    marker = "site-packages/"
    if marker in file:
        file = file.split(marker, 1)[1]
    elif "/work/main/" in file:
        file = file.split("/work/main/", 1)[1]
    return f"{func} ({file})"


def summarise(stacks: list[tuple[list[str], int]], top: int = 25) -> str:
    total = sum(count for _, count in stacks) or 1
    self_time: Counter[str] = Counter()
    inclusive_fn: Counter[str] = Counter()
    inclusive_layer: Counter[str] = Counter()
    for frames, count in stacks:
        if frames:
            self_time[_short(frames[-1])] += count
        for name in {_short(f) for f in frames}:
            inclusive_fn[name] += count
        for layer in {layer_of(f) for f in frames} - {None}:
            inclusive_layer[layer] += count  # type: ignore[index]
    out = [f"{total} samples of threads holding the GIL (all server processes)", "",
           "| layer (inclusive) | % of samples |", "|---|---|"]
    out += [f"| {name} | {100 * n / total:.1f} |" for name, n in inclusive_layer.most_common()]
    out += ["", "| function (self) | % |", "|---|---|"]
    out += [f"| `{name}` | {100 * n / total:.1f} |" for name, n in self_time.most_common(top)]
    out += ["", "| function (inclusive) | % |", "|---|---|"]
    out += [f"| `{name}` | {100 * n / total:.1f} |" for name, n in inclusive_fn.most_common(top * 2)]
    return "\n".join(out) + "\n"


def read_lines(path: Path) -> list[str]:
    """Lines of a collapsed-stack file, gzipped (``.gz``, as the harness saves them) or not."""
    if path.suffix == ".gz":
        import gzip

        return gzip.decompress(path.read_bytes()).decode(errors="replace").splitlines()
    return path.read_text(errors="replace").splitlines()


def matching(stacks: list[tuple[list[str], int]], needles: list[str]) -> str:
    """Inclusive share of the samples whose stack contains each substring (e.g. a function)."""
    total = sum(count for _, count in stacks) or 1
    out = ["| stacks containing | % of samples |", "|---|---|"]
    for needle in needles:
        hits = sum(count for frames, count in stacks if any(needle in f for f in frames))
        out.append(f"| `{needle}` | {100 * hits / total:.1f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profiling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("collapsed", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", action="append", default=[], metavar="TEXT",
                        help="also print the share of stacks containing TEXT (repeatable)")
    args = parser.parse_args(argv)
    stacks = parse_collapsed(read_lines(args.collapsed))
    print(matching(stacks, args.match) if args.match else summarise(stacks, args.top))


if __name__ == "__main__":
    main()
