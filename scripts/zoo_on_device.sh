#!/usr/bin/env bash
# Train zoo members on a CUDA machine and pack them for the repo: each member's folder with its
# checkpoints (weights in float16, no optimizer state) as OUT/NAME.tar.gz, and each member's
# accuracy along training on its cells as OUT/curves.txt.
#   bash scripts/zoo_on_device.sh OUT PRESET [PRESET ...]
set -euo pipefail
out=$1; shift
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p "$out/zoo"
for preset in "$@"; do
  python3 -c "from bench.cli import main; import sys; sys.exit(main(['zoo', 'train', '--preset', '$preset', '--out', '$out/zoo/$preset', '--device', 'cuda']))" 2>&1 | tr '\r' '\n' | grep -v 'it/s' | tail -3
  python3 scripts/slim_checkpoints.py "$out/zoo/$preset"
  python3 scripts/slim_checkpoints.py --curves "$out/zoo/$preset" >> "$out/curves.txt"
  tar -C "$out/zoo" -czf "$out/$preset.tar.gz" "$preset"
done
cat "$out/curves.txt"
