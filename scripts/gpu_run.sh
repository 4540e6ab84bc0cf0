#!/usr/bin/env bash
# One-shot GPU session script (for a lent H200): the study's deep cells (+ classical ones) and a U-Net budget
# sweep, all in parallel on one GPU. Copy device wheels into .whl/ first (docs: /work/.library/device/README.md),
# then: run(command="bash scripts/gpu_run.sh; bash scripts/gpu_collect.sh", carry=[".whl"]). Tested on CPU with
# NO_WHEELS=1 PY=.venv/bin/python TRAIN_SIZE=1024 TEST_SIZE=512 BUDGET=0.2 SWEEP_SIZE=512 SWEEP_EPOCHS_128=1 SWEEP_CAP=0.2.
# Env: TRAIN_SIZE TEST_SIZE BUDGET SWEEP_EPOCHS_128 SWEEP_EPOCHS_256 SWEEP_SIZE SWEEP_CAP INNER_TIMEOUT
set -u
cd "$(dirname "$0")/.."
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1 && [ -z "${NO_WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=$PWD/src:/tmp/site
else
  export PYTHONPATH=$PWD/src
fi
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${THREADS:-2} MKL_NUM_THREADS=${THREADS:-2} NUMBA_NUM_THREADS=${THREADS:-2}
OUT=${OUT:-/tmp/gpu_out}; W=${WORK:-/tmp/gw}; mkdir -p $OUT $W/logs
TRAIN_SIZE=${TRAIN_SIZE:-4096}; TEST_SIZE=${TEST_SIZE:-2048}; BUDGET=${BUDGET:-5}
SWEEP_SIZE=${SWEEP_SIZE:-2048}; E128=${SWEEP_EPOCHS_128:-160}; E256=${SWEEP_EPOCHS_256:-40}; CAP=${SWEEP_CAP:-5}
galseg() { $PY -c "import sys; from napari_galseg.cli import main; sys.exit(main())" "$@"; }
date; nvidia-smi -L 2>/dev/null; $PY -c "import torch, napari_galseg; print('torch', torch.__version__, torch.cuda.is_available())"

( # --- the U-Net budget sweep: each survey kind, 128² patches vs 256², the step count of 25 CPU minutes
  i=0
  for kind in gauss wide moffat; do
    case $kind in
      gauss) FO='{"psf": "gaussian", "psf_fwhm": 3.5, "galaxy_density": 1200.0, "sky_level": 120.0}';;
      wide) FO='{"psf_fwhm": 4.0, "moffat_beta": 2.5, "galaxy_density": 400.0, "sky_level": 400.0}';;
      moffat) FO='{"psf_fwhm": 2.5, "galaxy_density": 700.0}';;
    esac
    for patch in 128 256; do
      [ $patch = 256 ] && [ $kind = moffat ] && continue
      E=$E128; [ $patch = 256 ] && E=$E256
      $PY scripts/evaluate_unet.py --train-size $SWEEP_SIZE --test-size $SWEEP_SIZE --train-seed $((401+i)) --test-seed $((451+i)) \
        --minutes $CAP --epochs $E --field-options "$FO" --baselines defaults --set patch_size=$patch --set patches_per_epoch=512 \
        --set patience=0 --workdir $W/sweep_${kind}_$patch --json $W/sweep_${kind}_$patch.json > $W/logs/sweep_${kind}_$patch.log 2>&1 &
    done
    i=$((i+1))
  done
  wait ) &
SWEEP=$!

# --- the study: fields, then every cell in parallel (each study process runs its cells in order)
galseg synth $W/fields/train --size $TRAIN_SIZE --seed 21 > $W/logs/synth_train.log 2>&1 &
TRAIN_SYNTH=$!
galseg synth $W/fields/test --size $TEST_SIZE --seed 22 > $W/logs/synth_test.log 2>&1
wait $TRAIN_SYNTH
date; echo fields ready
S="--train $W/fields/train --test $W/fields/test --budget $BUDGET"
for v in default normalised stretched stretched+rms stretched+logrms; do
  galseg study $S --methods unet --variants $v --set unet.epochs=1000 -o $W/study_unet_$v > $W/logs/study_unet_$v.log 2>&1 &
done
MR="--set maskrcnn.batch_size=16 --set maskrcnn.patches_per_epoch=1024 --set maskrcnn.lr=2e-3 --set maskrcnn.epochs=1000"
galseg study $S --methods maskrcnn --variants default $MR -o $W/study_maskrcnn > $W/logs/study_maskrcnn.log 2>&1 &
DT="--set detr.batch_size=16 --set detr.patches_per_epoch=1024 --set detr.lr=4e-4 --set detr.epochs=1000"
galseg study $S --methods detr --variants default $DT -o $W/study_detr > $W/logs/study_detr.log 2>&1 &
galseg study $S --methods detr --variants default $DT --set detr.kind=mask2former -o $W/study_mask2former > $W/logs/study_mask2former.log 2>&1 &
galseg study $S --methods photutils kmeans forest -o $W/study_classical > $W/logs/study_classical.log 2>&1 &
wait
date; echo all done
