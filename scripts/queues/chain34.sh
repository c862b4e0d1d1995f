#!/bin/bash
# the word look-up loss in the shipped recipes (all subtasks, from stage 0): discriminative, then LaME K = 16
cd "$(dirname "$0")/../.."
scripts/queues/chain.sh see_32.json see-discriminative-wl see-lame-k16-wl
