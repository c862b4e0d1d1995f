#!/bin/bash
# The session chain of 2026-12-03 (third session): explicit CoT seeds 3-4 (for a five-seed CoT gain
# beside K = 16's five seeds), then LaME K = 8 seeds 3-4, as time allows.
cd "$(dirname "$0")"
./chain.sh see_18.json see-cot-ownret-s3 see-cot-ownret-s4 see-lame-s3 see-lame-s4 &&
touch ../../logs/chain20.done
