"""Regenerate lpzero_fw/data/manifest.json from a local copy of the benchmark files.

Usage: python tools/make_manifest.py ../shared/benchmarks/lpzero
The manifest lists relative paths and sha256 digests only (never the data), so the
downloader knows what to fetch and can verify it.
"""
import hashlib
import json
import sys
from pathlib import Path

root = Path(sys.argv[1])
files = {}
for path in sorted(root.rglob("*")):
    if path.is_file():
        files[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
out = Path(__file__).resolve().parents[1] / "lpzero_fw" / "data" / "manifest.json"
out.write_text(json.dumps(files, indent=0, sort_keys=True) + "\n")
print(f"{len(files)} files -> {out}")
