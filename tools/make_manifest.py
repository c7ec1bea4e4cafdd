"""Regenerate lpzero_fw/data/manifest.json: the benchmark files' sha256 and their mirrors.

Usage:
    python tools/make_manifest.py ../shared/benchmarks/lpzero \\
        --git pprp/LPZero=<bare git dir> --git microsoft/archai=<dir> --git aaronserianni/training-free-nas=<dir>

The manifest lists relative paths and sha256 digests only (never the data), so the
downloader knows what to fetch and can verify it. Each mirror in MIRRORS is verified
against a local clone of its repository (``--git``; e.g. ``git clone --bare``): every
file is read at the pinned commit with ``git show``. A file missing there goes to the
mirror's ``lacks``; a file whose bytes differ but whose content is the same (equal JSON,
or equal text up to line endings) is kept with its own sha256; anything else is lacked.
A mirror without ``--git`` keeps its previous verification, or is listed unverified.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "lpzero_fw" / "data" / "manifest.json"
LPZERO = "9faa34d2c63c6b276a0082442e7eb0aa70be2526"
ARCHAI = "af79c739e04cec045cf5a5cedd01f354aa3463d1"
TFNAS = "2d76e01b9586cad7340e8268dadba3056efd070b"
# files the package never reads (the authors' own proxy scores and costs, reference CSVs):
# a download that finds no copy of them warns instead of failing
REFERENCE_ONLY = ["*_scores_seed_*.yaml", "*_cost.yaml", "data/BERT_results_activation*.csv"]
MIRRORS = [  # tried in this order (unverified ones last)
    {"name": f"pprp/LPZero@{LPZERO[:7]}", "repo": "pprp/LPZero", "commit": LPZERO,
     "layout": {"data/": "data/", "": "saved_logs/"}},
    {"name": f"microsoft/archai@{ARCHAI[:7]}", "repo": "microsoft/archai", "commit": ARCHAI,
     "layout": {"random_": "archai/nlp/nas/saved_logs/random_"}},
    {"name": f"aaronserianni/training-free-nas@{TFNAS[:7]}", "repo": "aaronserianni/training-free-nas",
     "commit": TFNAS, "layout": {"data/BERT_": "data/BERT_"}},
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def same_content(a: bytes, b: bytes) -> bool:
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return a.replace(b"\r\n", b"\n") == b.replace(b"\r\n", b"\n")


def remote_path(layout: dict, relative: str) -> str | None:
    for prefix, there in layout.items():
        if relative.startswith(prefix):
            return there + relative[len(prefix):]
    return None


def verify(mirror: dict, git_dir: str, root: Path, files: dict[str, str]) -> dict:
    lacks, own = [], {}
    for relative, digest in files.items():
        path = remote_path(mirror["layout"], relative)
        if path is None:
            continue
        shown = subprocess.run(["git", "-C", git_dir, "show", f"{mirror['commit']}:{path}"], capture_output=True)
        if shown.returncode != 0:
            lacks.append(relative)
        elif sha256(shown.stdout) != digest:
            if same_content(shown.stdout, (root / relative).read_bytes()):
                own[relative] = sha256(shown.stdout)
            else:
                lacks.append(relative)
    checked = sum(remote_path(mirror["layout"], r) is not None for r in files) - len(lacks)
    note = f"{checked} files checked with git show {mirror['commit'][:7]}:<path>"
    if own:
        note += f"; {len(own)} with other bytes but the same content (JSON / line endings)"
    return {"verified": True, "note": note, "lacks": sorted(lacks), "sha256": dict(sorted(own.items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="local copy of the benchmark files")
    parser.add_argument("--git", action="append", default=[], metavar="OWNER/NAME=DIR",
                        help="a local (bare) clone to verify that mirror against")
    args = parser.parse_args()
    clones = dict(item.split("=", 1) for item in args.git)
    files = {p.relative_to(args.root).as_posix(): sha256(p.read_bytes())
             for p in sorted(args.root.rglob("*")) if p.is_file()}
    previous = {m["name"]: m for m in json.loads(OUT.read_text()).get("mirrors", [])} if OUT.exists() else {}
    mirrors = []
    for spec in MIRRORS:
        entry = {"name": spec["name"], "url": f"https://raw.githubusercontent.com/{spec['repo']}/{spec['commit']}",
                 "layout": spec["layout"]}
        if spec["repo"] in clones:
            entry.update(verify(spec, clones[spec["repo"]], args.root, files))
        else:
            old = previous.get(spec["name"], {})
            entry.update({k: old[k] for k in ("verified", "note", "lacks", "sha256") if k in old}
                         or {"verified": False, "note": "not verified: no clone given"})
        mirrors.append(entry)
    OUT.write_text(json.dumps({"files": files, "reference_only": REFERENCE_ONLY, "mirrors": mirrors}, indent=0, sort_keys=False) + "\n")
    print(f"{len(files)} files, {len(mirrors)} mirrors -> {OUT}")
    for m in mirrors:
        print(f"  {m['name']}: verified={m['verified']} ({m.get('note', '')}); lacks {len(m.get('lacks', []))}")


if __name__ == "__main__":
    main()
