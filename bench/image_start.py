"""Start time of the Docker image: seconds from `docker run` to the first 200 from /healthz.

Not a test: it prints figures. The image is built as tests/e2e/test_image.py builds it (host wheels, the Debian
base, `docker build`), then started `--runs` times on a new volume (database created and migrated, the secret key
made) and as many times on a kept volume (docker stop, then a new container on the same /data). The issue's
target is /healthz within 5 s of `docker run`; the test suite only checks that the image starts at all, since a
timed assertion fails on a loaded machine without telling anything about the image. Run it with nothing else
on the machine. Last line: one JSON object.

    .venv/bin/python bench/image_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers.docker import Containers, build_image, docker, ensure_engine  # noqa: E402

TARGET = 5.0  # seconds, the image issue's figure


def _figures(name: str, seconds: list[float]) -> dict[str, float]:
    shown = ", ".join(f"{s:.2f}" for s in seconds)
    median, worst = statistics.median(seconds), max(seconds)
    print(f"{name}: {shown} s; median {median:.2f} s, max {worst:.2f} s "
          f"({'within' if median < TARGET else 'OVER'} the {TARGET:.0f} s target)")
    return {f"{name}_median_s": round(median, 2), f"{name}_max_s": round(worst, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    why_not = ensure_engine()
    if why_not:
        print(f"no Docker engine on this machine: {why_not}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="edudesk-image-bench-") as work:
        image = build_image(Path(work))
        print(f"image {image.tag}: {image.size_bytes / 1e6:.0f} MB, docker build {image.build_seconds:.1f} s")
        made = Containers(image)
        fresh: list[float] = []
        kept: list[float] = []
        try:
            for _ in range(args.runs):
                volume = made.volume()
                first, took = made.run(volume)
                fresh.append(took)
                docker("stop", "--time", "20", first, timeout=60)
                _second, took = made.run(volume)
                kept.append(took)
                made.cleanup()
        finally:
            made.cleanup()
            docker("rmi", "--force", image.tag, check=False)
    result = {"runs": args.runs, "target_s": TARGET, **_figures("new_volume", fresh), **_figures("kept_volume", kept)}
    print(json.dumps(result))
    return 0 if result["new_volume_median_s"] < TARGET and result["kept_volume_median_s"] < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
