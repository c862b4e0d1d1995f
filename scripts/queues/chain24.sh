#!/bin/bash
# 2026-12-04: the K = 16 sequential-latent baseline (17 steps a query, matched to the shipped K = 16
# LaME; seed 0), then the shipped CoT recipe with 15% of colour_of / shape_of queries embedded after
# another scene's gold rationale (between 0 and the 0.5 of see_21).
cd "$(dirname "$0")"
./chain.sh see_22.json see-sequential-k16 see-cot-ownret-swap15 &&
touch ../../logs/chain24.done
