"""Screenshot of our knee SR in OHIF, for docs/: the same set-up as tests/test_viewer_ohif.py.

    PYTHONPATH=. python -m tests.viewer.screenshot --out docs/figures/ohif_knee.png

A synthetic knee goes through the node into Orthanc (DICOMweb); OHIF opens the SR in headless
Chromium and loads its measurements as Cobb angles; the page is checked as in the test and the
screenshot written to ``--out``.  Exits 1 when the page check finds a problem (the screenshot is
written anyway, for looking at it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from viewer.ohif_study import (  # noqa: E402
    check_page,
    knee_study_in_orthanc,
    missing_reason,
    open_in_ohif,
)


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures/ohif_knee.png"))
    parser.add_argument("--seed", type=int, default=6, help="generator seed of the knee")
    args = parser.parse_args(argv)
    if (reason := missing_reason()) is not None:
        print(reason, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ohif-shot-") as tmp:
        work = Path(tmp)
        with knee_study_in_orthanc(work, seed=args.seed) as study:
            result = open_in_ohif(study, work / "ohif.png")
        problems = check_page(result, study.sr, work / "ohif.png")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / "ohif.png", args.out)
    visits = 1 + len(result.get("earlierVisits", []))
    print(f"wrote {args.out} ({result['elapsedS']:.0f} s in the browser, page opened {visits}x)")
    print("\n".join(problems) or "page check: the SR's angles are shown and drawn")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
