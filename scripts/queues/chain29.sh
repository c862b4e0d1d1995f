#!/bin/bash
# 64 visual tokens (size fine-64): a new scene stage 0, then the discriminative model on it (binding)
cd "$(dirname "$0")/../.."
scripts/queues/chain.sh see_27.json stage0-scene64 see-discriminative-64
