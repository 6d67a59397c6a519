"""The `--ray`, `--ray-address`, `--ray-workers` and `--remote-hosts` options (argparse only; nothing heavy)."""

from __future__ import annotations

import argparse

RAY_HELP = """Ray (pip install edgex[ray]):
  The labelled set is cut into shards, preprocessed on the cluster, and each worker (a Ray actor that loads
  the artifact once) runs shards batched; the logits come back and the report is the one a local run writes.
  Worker nodes need edgex[ray] and the runtimes, not the data or the artifacts (both travel through Ray)."""


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """--ray, --ray-address, --ray-workers, --shard-size, --skip-bad-images: shared by `eval` and `bench`."""
    group = parser.add_argument_group("scale-out (Ray)", description=RAY_HELP.split("\n", 1)[1])
    group.add_argument("--ray", action="store_true",
                       help="evaluate on Ray: the cluster in RAY_ADDRESS when set, else a local instance started "
                       "for this run (and stopped after it); --threads is then per worker (default 1)")
    group.add_argument("--ray-address", metavar="HOST:PORT", help="join this Ray cluster (implies --ray)")
    group.add_argument("--ray-workers", type=int, metavar="N",
                       help="actors per artifact (default: the cluster's CPUs divided by --threads)")
    group.add_argument("--shard-size", type=int, default=64, metavar="N",
                       help="images per shard: the unit that is retried when a worker dies (default %(default)s)")
    group.add_argument("--skip-bad-images", action="store_true",
                       help="an image that cannot be decoded is skipped and listed in the report (default: exit 65)")


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--remote-hosts", type=str, metavar="HOSTS_YAML",
                        help="bench on every device of this file in parallel (one SSH session each); see README")


def wants_ray(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "ray", False) or getattr(args, "ray_address", None))


def check_scale_arguments(args: argparse.Namespace) -> None:
    """Combinations that cannot work are usage errors (2), said before anything starts."""
    from edgex.errors import UsageError

    ray = wants_ray(args)
    if ray and getattr(args, "remote", None):
        raise UsageError("--ray and --remote cannot be combined", "Ray evaluates on the cluster; drop one.")
    if getattr(args, "remote_hosts", None) and (ray or getattr(args, "remote", None)):
        raise UsageError("--remote-hosts runs on its devices; it cannot be combined with --ray or --remote")
    if ray and getattr(args, "eval_data", None) is None:
        raise UsageError("--ray shards the evaluation images; it needs --eval-data")
    for name in ("ray_workers", "shard_size"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    if getattr(args, "skip_bad_images", False) and getattr(args, "eval_data", None) is None:
        raise UsageError("--skip-bad-images needs --eval-data")
    remote = getattr(args, "remote", None) or getattr(args, "remote_hosts", None)
    if getattr(args, "skip_bad_images", False) and remote:
        raise UsageError("--skip-bad-images is not available with --remote or --remote-hosts",
                         "Remove the unreadable images, or evaluate here (or with --ray).")
