"""The entry point of `eval/bench` for `--ray` and `--skip-bad-images`: the usual suite, scaled or filtered.

`--skip-bad-images` means what it means for `edgex convert`: an image that cannot be decoded is left out,
listed in the report (`eval_data.skipped_bad_images`, each with its path and reason) and counted, so that
evaluated + skipped == the images of the set. Without it a corrupt image stops the run with 65, as locally.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgex.errors import DataError
from edgex.evaluation.dataset import LabelledImages, load_labelled


def decode_error(path: Path) -> str | None:
    """Why the image cannot be decoded (the reason a local run would stop with), or None."""
    from edgex.preprocess import read_rgb

    try:
        read_rgb(path)
    except DataError as exc:
        return exc.message
    return None


def split_decodable(data: LabelledImages, threads: int | None = None) -> tuple[LabelledImages, list[dict]]:
    """(the images that decode, [{"file", "reason"}] for those that do not); Pillow decodes without the GIL."""
    from edgex.runtimes import usable_cores

    with ThreadPoolExecutor(max_workers=threads or usable_cores()) as pool:
        reasons = list(pool.map(decode_error, data.files))
    keep = [i for i, why in enumerate(reasons) if why is None]
    skipped = [{"file": str(data.files[i]), "reason": why} for i, why in enumerate(reasons) if why is not None]
    good = LabelledImages([data.files[i] for i in keep], data.labels[keep], data.classes, data.root, data.kind,
                          data.source)
    return good, skipped


def write_labels_csv(data: LabelledImages, path: Path) -> Path:
    """The images as a CSV of absolute path,label: what run_suite reads as --eval-data."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        for file, label in zip(data.files, data.labels, strict=True):
            writer.writerow([str(Path(file).resolve()), data.classes[int(label)]])
    return path


def _manifest_classes(paths: list[Path]) -> list[str] | None:
    """The class order run_suite uses: the first manifest's."""
    from edgex.bench.artifacts import find_artifacts

    return next((r.manifest["classes"] for r in find_artifacts(paths) if r.manifest and r.manifest.get("classes")),
                None)


def run_scaled_suite(args: argparse.Namespace, settings, reporter=None) -> dict:
    """run_suite, on Ray with --ray/--ray-address, after leaving out undecodable images with --skip-bad-images."""
    from edgex.bench.suite import run_suite
    from edgex.scale.cli import wants_ray

    with tempfile.TemporaryDirectory(prefix="edgex-scale-") as tmp:
        eval_data, whole, skipped = args.eval_data, None, []
        if getattr(args, "skip_bad_images", False) and eval_data is not None:
            whole = load_labelled(Path(eval_data), _manifest_classes(args.artifacts))
            good, skipped = split_decodable(whole)
            if skipped and reporter is not None:
                reporter.info(f"[yellow]skipped {len(skipped)} unreadable image(s) (--skip-bad-images): "
                              f"{', '.join(Path(s['file']).name for s in skipped[:5])}[/yellow]")
            if skipped:
                if not good.files:
                    raise DataError(f"none of the {len(whole.files)} images under {eval_data} can be decoded",
                                    skipped[0]["reason"])
                eval_data = write_labels_csv(good, Path(tmp) / "decodable.csv")
        if wants_ray(args):
            from edgex.scale.ray_eval import run_ray_suite

            report = run_ray_suite(args, settings, reporter, eval_data)
        else:
            report = run_suite(args.artifacts, settings, eval_data, args.source, not args.no_source, reporter)
    if whole is not None:
        _account(report, whole, skipped)
    return report


def _account(report: dict, whole: LabelledImages, skipped: list[dict]) -> None:
    """The report describes the whole set, lists the skipped images, and every image is counted once."""
    report["eval_data"] = {**whole.describe(), "evaluated": len(whole.files) - len(skipped),
                           "skipped_bad_images": skipped}
    keys = {Path(file).resolve().as_posix(): key for file, key in zip(whole.files, whole.image_keys(), strict=True)}
    for row in report["results"]:
        if row.get("predictions"):  # the decodable subset named its images by absolute path: the whole set's keys
            row["predictions"] = {keys.get(name, name): top1 for name, top1 in row["predictions"].items()}
        n = (row.get("accuracy") or {}).get("n")
        if n is not None and n + len(skipped) != len(whole.files):
            raise AssertionError(f"{row['name']}: {n} evaluated + {len(skipped)} skipped != {len(whole.files)}")
