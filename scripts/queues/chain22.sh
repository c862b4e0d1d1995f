#!/bin/bash
# The session chain of 2026-12-03 (fourth session): is perception limited by training length?
# The discriminative recipe with stage 2 of 3,000 steps (3x the shipped 1,000; its loss was still
# falling at the end of the 1,150-step equal-wall-time runs), scored on validation, then on test.
cd "$(dirname "$0")"
./chain.sh see_20.json see-discriminative-3k &&
touch ../../logs/chain22.done
