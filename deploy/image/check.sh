#!/usr/bin/env bash
# Proves the image target/image/oci holds what deploy/image/Containerfile says, and that it runs:
# its entrypoint, user and layers are as documented; unpacked with umoci, the binary from its root
# filesystem, run under chroot as the image's user, starts `kefu serve gateway`, answers gRPC health
# SERVING and serves its metrics. No container runtime needed.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
layout=target/image/oci
bundle=target/image/bundle

python3 - "$layout" "kefu-$version" <<'PY'
import json, sys, os
layout, tag = sys.argv[1], sys.argv[2]
index = json.load(open(os.path.join(layout, "index.json")))
manifest_ref = next(m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
blob = lambda digest: os.path.join(layout, "blobs", *digest.split(":"))
manifest = json.load(open(blob(manifest_ref["digest"])))
config = json.load(open(blob(manifest["config"]["digest"])))["config"]
checks = {
    "entrypoint": (config.get("Entrypoint"), ["/usr/local/bin/kefu"]),
    "default command": (config.get("Cmd"), ["up"]),
    "user": (config.get("User"), "10001:10001"),
    "layers (one: the binary, its libraries, /etc/passwd, /data)": (len(manifest["layers"]), 1),
}
for what, (found, expected) in checks.items():
    assert found == expected, f"{what}: {found!r}, expected {expected!r}"
    print(f"image {what}: {found}")
size = sum(layer["size"] for layer in manifest["layers"])
print(f"image layers: {size / 1048576:.1f} MiB compressed")
PY

rm -rf "$bundle"
umoci unpack --image "$layout:kefu-$version" "$bundle" >/dev/null
rootfs=$bundle/rootfs
test ! -e "$rootfs/bin/sh" || { echo "the image has a shell" >&2; exit 1; }
test "$(stat -c %u "$rootfs/data")" = 10001 || { echo "/data is not the user's" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
metrics=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
chroot=$(command -v chroot)
env -i KEFU_INTERNAL_KEY=image-check-internal-key-0123456789abcdef \
  KEFU_GATEWAY_ADDR=127.0.0.1:$port KEFU_METRICS_ADDR=127.0.0.1:$metrics KEFU_DATA_DIR=/data \
  "$chroot" --userspec=10001:10001 "$rootfs" /usr/local/bin/kefu serve gateway >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
# grpc.health.v1.Health/Check with an empty request: a 5-byte gRPC frame; SERVING is 08 01.
printf '\x00\x00\x00\x00\x00' > target/image/health-request
for _ in $(seq 50); do
  answer=$(curl -s --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
    --data-binary @target/image/health-request "http://127.0.0.1:$port/grpc.health.v1.Health/Check" | od -An -tx1 | tr -d ' \n') || true
  [ "$answer" = 00000000020801 ] && break
  sleep 0.2
done
[ "$answer" = 00000000020801 ] || { echo "no SERVING from the image's gateway (got '$answer'):" >&2; cat "$log" >&2; exit 1; }
echo "kefu serve gateway from the image's root filesystem, as 10001 under chroot: health SERVING"
curl -sf "http://127.0.0.1:$metrics/metrics" | grep -q '^kefu_build_info{version="'"$version"'"} 1' \
  || { echo "no metrics from the image's gateway" >&2; exit 1; }
echo "and its metrics at /metrics"
[ "$(ps -o uid= -p $server | tr -d ' ')" = 10001 ] || { echo "the server does not run as 10001" >&2; exit 1; }
echo "running as uid 10001"
kill -TERM $server; wait $server || true
