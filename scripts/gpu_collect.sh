#!/usr/bin/env bash
# Pack what came out (results, logs, predictions) into $OUT, in at most a few files.
W=${WORK:-/tmp/gw}; OUT=${OUT:-/tmp/gpu_out}
cd $W && tar czf $OUT/results.tgz --exclude='*.fits' --exclude='model' --exclude='fields' study_* sweep_*.json logs 2>/dev/null
find study_* -name pred.fits | tar czf $OUT/preds.tgz -T - 2>/dev/null
ls -la $OUT
