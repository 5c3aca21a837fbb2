#!/usr/bin/env bash
# Assembles the root filesystem of a jobmatch image in OUT: the binary, exactly the shared
# libraries it loads (as `ldd` names them, the dynamic loader included), CA certificates,
# a passwd/group naming the numeric user 65532, an empty /tmp, and optionally a model
# directory and extra libraries (the CUDA runtime). Nothing else: no shell, no package
# manager. The Dockerfiles run it in their build stage; scripts/images.sh runs it on the
# host and hands OUT to buildah.
#
#   images/rootfs.sh OUT BINARY [--model DIR] [--libs DIR]
set -euo pipefail
OUT=${1:?usage: $0 OUT BINARY [--model DIR] [--libs DIR]}
BINARY=${2:?usage: $0 OUT BINARY [--model DIR] [--libs DIR]}
shift 2
MODEL="" LIBS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --libs) LIBS=$2; shift 2 ;;
    *) echo "rootfs: unknown argument $1" >&2; exit 2 ;;
  esac
done

rm -rf "$OUT"
mkdir -p "$OUT/usr/local/bin" "$OUT/etc/ssl/certs" "$OUT/tmp"
chmod 1777 "$OUT/tmp"
name=$(basename "$BINARY")
cp "$BINARY" "$OUT/usr/local/bin/$name"
# Debug information is most of a binary's size and nothing the image runs needs.
strip --strip-debug "$OUT/usr/local/bin/$name" 2>/dev/null || true

# Every shared object one file loads, copied to the same path in OUT (symlinks resolved,
# so the soname path holds the real file).
copy_libs() {
  ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
    if [ -e "$OUT$lib" ]; then continue; fi
    mkdir -p "$OUT$(dirname "$lib")"
    cp -L "$lib" "$OUT$lib"
  done
}
copy_libs "$BINARY"

if [ -n "$LIBS" ]; then
  mkdir -p "$OUT/usr/local/cuda/lib"
  for lib in "$LIBS"/*.so*; do
    cp -L "$lib" "$OUT/usr/local/cuda/lib/"
    copy_libs "$lib"
  done
fi

for ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  if [ -f "$ca" ]; then cp -L "$ca" "$OUT/etc/ssl/certs/ca-certificates.crt"; break; fi
done
[ -f "$OUT/etc/ssl/certs/ca-certificates.crt" ] || { echo "rootfs: no CA certificates found (install ca-certificates)" >&2; exit 1; }
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' >"$OUT/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$OUT/etc/group"
printf 'hosts: files dns\n' >"$OUT/etc/nsswitch.conf"

if [ -n "$MODEL" ]; then
  dest="$OUT/models/$(basename "$MODEL")"
  mkdir -p "$dest"
  # What the loader reads; the model card, training data notes and git files stay out.
  for f in config.json config_sentence_transformers.json modules.json sentence_bert_config.json \
           special_tokens_map.json tokenizer.json tokenizer_config.json vocab.txt \
           model.safetensors pytorch_model.bin sentencepiece.bpe.model; do
    if [ -f "$MODEL/$f" ]; then cp -L "$MODEL/$f" "$dest/"; fi
  done
  for d in "$MODEL"/[0-9]_*/; do
    if [ -d "$d" ]; then cp -rL "$d" "$dest/"; fi
  done
  [ -f "$dest/model.safetensors" ] || [ -f "$dest/pytorch_model.bin" ] || { echo "rootfs: no weights in $MODEL" >&2; exit 1; }
fi
chmod -R a+rX "$OUT"
echo "rootfs: $OUT $(du -sh "$OUT" | cut -f1)" >&2
