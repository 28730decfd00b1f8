#!/bin/sh
# compare.sh: score every image_*.json in CAPTION_DIR against GROUND_TRUTH in ONE compare.py run (models loaded once)
# and build the comparison of THIS run in OUTPUT_DIR: model_comparison_table.md/.csv, batch_evaluation_summary.json
# and a self-contained evaluation_report.html.
#
#   ./compare.sh --examples                          # the bundled examples/ -> ./results
#   ./compare.sh                                     # the settings below (qwen.py/internvl.py write ./data/captions)
#   CAPTION_DIR=./runs/captions IMAGES_DIR=./data/multiview_images ./compare.sh --allow_missing
#
#   PROTOCOL=vasevqa3d ./compare.sh                  # VaseVQA-3D's metric definitions (its Table 3 columns)
#
# Extra arguments go to compare.py unchanged (./compare.sh --metrics semantic,retrieval --no_coco --bootstrap 0).
# --examples (first argument) scores examples/captions against examples/groundTruth.json with the example renders.
# OUTPUT_DIR holds one run: files an earlier run wrote there and this run did not (the compare_<model>.* files of a
# model no longer compared) are removed once the new set is written (docs/compare.md).
set -eu

# ---- settings
CAPTION_DIR="${CAPTION_DIR:-./data/captions}"            # where image_<model>.json files are
GROUND_TRUTH="${GROUND_TRUTH:-./data/groundTruth.json}"
IMAGES_DIR="${IMAGES_DIR:-}"                             # renders (./data/multiview_images): CLIPScore + thumbnails
OUTPUT_DIR="${OUTPUT_DIR:-./results}"
CLIP_MODEL="${CLIP_MODEL:-./models/openai/clip-vit-base-patch32}"  # absent -> CLIP metrics null, overall partial
PROTOCOL="${PROTOCOL:-vlmkit}"                            # vlmkit or vasevqa3d (VaseVQA-3D's definitions)
SENTENCE_MODEL="${SENTENCE_MODEL:-}"                      # empty = the protocol's default (MiniLM / all-mpnet-base-v2)
DEVICE="${DEVICE:-auto}"
BATCH_SIZE="${BATCH_SIZE:-32}"
ALLOW_MISSING="${ALLOW_MISSING:-0}"                       # 1 = score the matched subset, record coverage
NO_COCO="${NO_COCO:-0}"                                   # 1 = skip BLEU/METEOR/ROUGE-L/CIDEr (Java)
PYTHON="${PYTHON:-}"                                      # empty: python3, else python
# ---- end of settings

HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/vlmkit/launcher.sh"
launcher_start "$0" "$HERE/compare.py" "$@"

if [ "${1:-}" = "--examples" ]; then
    shift
    CAPTION_DIR="$HERE/examples/captions" GROUND_TRUTH="$HERE/examples/groundTruth.json"
    IMAGES_DIR="$HERE/examples/multiview_images"
fi

if [ ! -d "$CAPTION_DIR" ]; then
    echo "error: $CAPTION_DIR: caption folder not found (set CAPTION_DIR, or ./compare.sh --examples)" >&2; exit 2
fi

# compare.py's arguments: the settings' flags, then every image_*.json except the ground truth (in case it lives in
# the same folder under such a name), then the user's extra arguments last (POSIX sh has no arrays: the extra
# arguments already in "$@" are rotated to the end).
NUM_EXTRA=$#
set -- "$@" --generated
gt_real="$(cd "$(dirname "$GROUND_TRUTH")" 2>/dev/null && pwd)/$(basename "$GROUND_TRUTH")"
NUM_FILES=0
for f in "$CAPTION_DIR"/image_*.json; do
    [ -e "$f" ] || continue  # the pattern itself when nothing matches
    f_real="$(cd "$(dirname "$f")" && pwd)/$(basename "$f")"
    if [ "$(basename "$f")" = "groundTruth.json" ] || [ "$f_real" = "$gt_real" ]; then
        echo "compare.sh: skipping ground truth $f"; continue
    fi
    set -- "$@" "$f"
    NUM_FILES=$((NUM_FILES + 1))
done
if [ "$NUM_FILES" -eq 0 ]; then
    echo "error: $CAPTION_DIR: no image_*.json caption files" >&2; exit 2
fi
set -- "$@" --ground_truth "$GROUND_TRUTH" --output_dir "$OUTPUT_DIR" --clip_model "$CLIP_MODEL" \
    --protocol "$PROTOCOL" --device "$DEVICE" --batch_size "$BATCH_SIZE"
if [ -n "$IMAGES_DIR" ]; then set -- "$@" --images_dir "$IMAGES_DIR"; fi
if [ -n "$SENTENCE_MODEL" ]; then set -- "$@" --sentence_model "$SENTENCE_MODEL"; fi
if [ "$ALLOW_MISSING" = "1" ]; then set -- "$@" --allow_missing; fi
if [ "$NO_COCO" = "1" ]; then set -- "$@" --no_coco; fi
while [ "$NUM_EXTRA" -gt 0 ]; do
    set -- "$@" "$1"; shift; NUM_EXTRA=$((NUM_EXTRA - 1))
done

echo "compare.sh: $NUM_FILES caption file(s) in $CAPTION_DIR vs $GROUND_TRUTH -> $OUTPUT_DIR"
"$PYTHON" "$HERE/compare.py" "$@"

echo
echo "compare.sh: table    $OUTPUT_DIR/model_comparison_table.md (.csv)"
echo "compare.sh: summary  $OUTPUT_DIR/batch_evaluation_summary.json"
echo "compare.sh: report   $OUTPUT_DIR/evaluation_report.html"
