#!/bin/bash
# 2026-12-04, after chain27: seeds 3 and 4 of the K = 16 sequential-latent baseline (five seeds
# against LaME K = 16's and the discriminative model's seeds 0-4, paired on the test queries).
cd "$(dirname "$0")"
./chain.sh see_26.json see-sequential-k16-s3 see-sequential-k16-s4 &&
touch ../../logs/chain28.done
