#!/usr/bin/env bash
# Builds kefu's container image from a release binary, with Debian's buildah (no Docker daemon),
# into an OCI layout: target/image/oci (tag kefu:<version>). Usage: deploy/image/build.sh [binary]
# (default target/release/kefu). The image: FROM scratch, the binary, the C libraries it links, a
# passwd entry for the user kefu (10001), /data owned by it.
set -euo pipefail
cd "$(dirname "$0")/../.."
binary=${1:-target/release/kefu}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
context=target/image/context
rm -rf target/image && mkdir -p "$context/image-root/usr/local/bin" "$context/image-root/etc" "$context/image-data"

install -m 0755 "$binary" "$context/image-root/usr/local/bin/kefu"
# The dynamic loader and every library the binary links, at the paths it looks for them.
for library in $(ldd "$binary" | grep -o '/[^ ]*' | sort -u); do
  mkdir -p "$context/image-root$(dirname "$library")"
  cp -L "$library" "$context/image-root$library"
done
printf 'kefu:x:10001:10001:kefu:/data:/nonexistent\n' > "$context/image-root/etc/passwd"
printf 'kefu:x:10001:\n' > "$context/image-root/etc/group"
cp deploy/image/Containerfile "$context/Containerfile"

buildah --storage-driver vfs build --quiet --isolation chroot --timestamp 0 \
  -f "$context/Containerfile" -t "kefu:$version" "$context"
buildah --storage-driver vfs push --quiet "kefu:$version" "oci:target/image/oci:kefu-$version"
echo "image kefu:$version in target/image/oci (OCI layout, tag kefu-$version)"
