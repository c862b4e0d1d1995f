#!/bin/bash
# the question before the image (prompt_format=plain-text-first): the discriminative model
cd "$(dirname "$0")/../.."
scripts/queues/chain.sh see_29.json see-discriminative-tf
