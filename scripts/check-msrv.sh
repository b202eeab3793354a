#!/usr/bin/env bash
# Keeps `rust-version` in Cargo.toml true: it must be at least every locked dependency's own
# `rust-version`, and the project must build with that toolchain (installed with rustup when
# missing). Run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
[[ -n $msrv ]] || { echo "check-msrv.sh: no rust-version in Cargo.toml" >&2; exit 1; }
# The newest Rust any locked dependency asks for.
need=$(cargo metadata --format-version 1 --locked 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
ids = {n["id"] for n in d["resolve"]["nodes"]}
def key(v): return tuple(int(x) for x in (v.split(".") + ["0", "0"])[:3])
vs = [(p.get("rust_version") or "0", p["name"]) for p in d["packages"]
      if p["id"] in ids and p["name"] != "capdiag"]
v, name = max(vs, key=lambda x: key(x[0]))
print(v, name)')
read -r need_v need_name <<<"$need"
python3 - "$msrv" "$need_v" "$need_name" <<'PY'
import sys
msrv, need, name = sys.argv[1:]
key = lambda v: tuple(int(x) for x in (v.split(".") + ["0", "0"])[:3])
if key(msrv) < key(need):
    sys.exit(f"check-msrv.sh: rust-version {msrv} is below {need}, which {name} needs")
PY
rustup toolchain list | grep -q "^$msrv" || rustup toolchain install "$msrv" --profile minimal >/dev/null
CARGO_TARGET_DIR=${MSRV_TARGET:-target/msrv} cargo +"$msrv" check --locked --all-targets --quiet
echo "rust-version $msrv: builds, and no dependency needs more (the most: $need_name $need_v)"
