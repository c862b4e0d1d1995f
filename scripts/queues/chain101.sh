#!/bin/bash
# 2026-12-08: replaces chain100 (in git history). Read out, the rationale recipe's reason tokens name a
# relation's axis (86-100%) but flip a coin on its direction (53-63%), though a linear probe reads the
# direction from them at 0.94-0.99. First after seed 2's trio: seed 1's recipe with the decoder's loss
# weighing the look step's relation word 5x (`decoder_relation_weight=5`, see_89), then the rest of
# chain100's order.
# 2026-12-08: replaces chain99 (in git history). Over seeds 0 and 1 the rationale recipe keeps 59% of CoT's
# reasoning gain (margin to half +0.6 [-1.2, +2.6]); seed 1's recipe reads no relation with four objects
# while seed 1's CoT does, and its last-phase losses trail seed 0's by about 150-200 steps. After seed 2's
# trio (training): seed 1's recipe with a 1,800-step last phase (see_89: does a slow seed need more steps?),
# then the one pass at the recipe's last-phase wall time (1,400 steps: the recipe's 1,200 took 1.16-1.17x
# the one pass's wall time), seeds 0 and 1; then seeds 3 and 4 of the trio, then seed 1's one pass and CoT
# at 1,800 steps, then the rest of chain99's queue.
# 2026-12-08: replaces chain98 (in git history). The one pass with relation practice and the perception
# draws kept (see_87, seed 0) beats its see_84 last phase (reasoning +4.2 [+1.2, +7.1], validation 80.3
# against 75.7): that is its best last phase by validation now, and its seeds in see_88 take it
# (see-deep-disc-pos-relp-bind-mixed-sN) instead of see_84's. Against it the recipe with the
# relation-focused last phase keeps 94% of CoT's gain in seed 0 (+9.2 [+6.4, +12.2] against +9.8),
# all three at 1,200 last-phase steps.
# 2026-12-08: replaces chain97 (in git history). The rationale recipe with positions and the relation-focused
# last phase (see_85, seed 0) reads relations without losing perception (colour_of 93.7 where the one
# pass with that phase fell to 67.7): reasoning 65.2, level with CoT's 65.8 (-0.6 [-3.8, +2.8]) and
# +13.4 [+10.4, +16.4] over the one pass's best last phase by validation (see_84's, 51.8), 96% of CoT's
# gain; validation 85.7. One seed: seeds 1-4 of it come next (see_88: per seed the recipe and CoT with
# the relation-focused last phase, the one pass with see_84's, its best by validation), right after
# see_87's one pass, which is training. see_87's CoT and recipe follow the seeds.
# 2026-12-08: replaces chain96 (in git history). The relation-focused last phase (see_85) costs the one pass
# what CoT gains: its colour_of falls 95.7 -> 67.7 and shape_of 91.0 -> 65.7, each wrong answer another
# object's colour or shape, and its relation_two_step falls too (35.3 -> 26.7); validation 68.4 against
# 75.7. Practising "the colour of the shape left of X" at 9 of 17 draws teaches it to name another object
# when asked about X itself. Its seeds (see_86) are dropped. Instead, after see_85's recipe: the same 1,200
# steps with the perception draws kept (see_87: the reasoning-weighted mix plus two more relation_two_step
# and one more relation_attribute draws, 23 in all), seed 0, the one pass first, then CoT (its lookup
# phase retrained), then the recipe.
# 2026-12-07: replaces chain95 (in git history), on a new machine whose runs/ did not carry over. The
# relation-focused last phase with positions (see_85) taught CoT to read a relation (relation_two_step
# 62.3, above the exclusion baseline for the first time); its one pass and recipe are next. see_84's
# lookup-phase models of the one pass and the recipe are retrained first (seed 0, FIRST_ONLY=1; their
# validation scores check that a rerun is the same run), then see_85's one pass and recipe, then seeds
# 1-4 of all three with positions and the relation-focused last phase (see_86), before the rest of
# chain95's queue (the reasoning-weighted seeds 2-3, the 12-layer trio, the equal-time one pass).
# 2026-12-07: replaces chain94 (in git history). With positions as content (see_84) the one pass excludes the
# anchor better, but no model, CoT included, reads a relation: four-object two-step scenes stay at chance.
# Next, before seed 2's pipelines: does twice the steps with the relational subtasks at half the draws
# teach CoT (whose rationale spells the step out), the one pass and the recipe a relation, with positions?
# (see_85, from see_84's lookup-phase models, 1,200 last-phase steps, seed 0.)
# 2026-12-07: replaces chain93 (in git history). No model reads spatial relations: on relation_two_step every
# model, CoT included, scores at or below naming a random object other than the anchor (54%), where a
# reader that knew each object's cell could reach 87%; with the scene words alone a visual token says what
# is in its cell, never where. After see_83: the one pass, CoT and the recipe with each visual token's
# position as content (`visual_positions=true`, lame_tools/visual_positions.py; see_84, seed 0, all three
# phases, the last one reasoning-weighted with the zero final rate; paired with see_80's seed 0).
# 2026-12-07: replaces chain92 (in git history). Where the relational answers go wrong
# (scripts/binding_errors.py, relational subtasks): the one pass answers the anchor, the object the question
# names, in 18-23% of the two-step relation queries and 25-35% of relation_attribute's (CoT in 4-7%),
# and the recipe's gain is mostly fewer anchor answers (seed 1, where it answers the anchor as often, gains
# nothing there). First, seed 4's reasoning-weighted last phase of all three with the anchor's answer as a
# hard negative (see_83, `hard_negative_from=anchor`; paired with see_79): does one pass stop answering the
# anchor, and what is left of CoT's gain and the recipe's share?
# 2026-12-07: replaces chain91 (in git history). Seed 1 of the reasoning-weighted last phase kept 20% of CoT's
# gain (three seeds 39%), and every last phase tried leaves the share at 39-47%, short on the two-step
# relation (the recipe keeps 7-43% of CoT's gain there). Depth is the untried lever for a relation that
# needs two look-ups in one pass: right after see_80's seed 2, the 12-layer recipe, one pass and CoT with
# that last phase (see_82, seed 0; paired with see_80's 6-layer seed 0), then see_80's seed 3.
# 2026-12-07: replaces chain90 (in git history). If the reasoning-weighted last phase becomes the recipe, its
# share at equal training time needs the one pass given the recipe's time with that last phase too: see_81
# (774 last-phase steps with the rw mix from see_72's lookup-phase models, seeds 0-4) runs right after
# see_80's seeds 2 and 3, before the zero-final-rate last phases of seeds 2-3 and see_78 (the same at equal
# time with the old mix).
# 2026-12-07: replaces chain89 (in git history). The reasoning-weighted last phase (see_80) gave the recipe 45%
# (seed 4) and 70% (seed 0) of CoT's gain, 57% over two seeds, level with half: it needs five seeds first.
# Seeds 2 and 3 of see_77 now train only their first two phases (FIRST_ONLY=1) before see_80's trio from
# them; their zero-final-rate last phases follow after both, so the rw share rests on five seeds about an
# hour per seed sooner. The see_77 three-stem loop is one function, lr0_trio.
# 2026-12-07: replaces chain88 (in git history). In seed 4 the reasoning subtasks drawn twice as often in the
# last phase (see_79) lift all three models' reasoning (recipe +3.2, one pass +6.2, CoT +4.2, paired against
# see_76) and every model now learns counting by attribute (81-83); the recipe's share is 45%. The same last
# phase for seeds 0-3 (see_80) from the zero-final-rate lookup-phase models of see_77: seeds 0 and 1 first,
# then each of seeds 2 and 3 after its see_77 pipelines.
# 2026-12-07: replaces chain87 (in git history). see_79 moves up, between seeds 1 and 2 of see_77: the
# recipe's seed-1 run with the zero final rate reasons at 37.6 (count_attribute 60.7), like seed 0's 42.2
# (59.0), so the zero final rate alone is unlikely to lift the share, and more practice on the reasoning
# subtasks is the next question. Seeds 2-3 of see_77 follow it.
# 2026-12-07: replaces chain86 (in git history). After seeds 0-3 of the zero-final-rate pipelines (see_77) and
# before the one pass at equal time (see_78): seed 4's last phase of all three models with the zero final rate
# and the reasoning subtasks drawn twice as often (see_79, stems `-rw`): 8 of 20 draws instead of 4 of 16.
# CoT gains most on relation_two_step (+24.3) where the recipe keeps 23% of it: does more practice there
# lift the recipe more than the one pass?
# 2026-12-07: replaces chain85 (in git history). After seeds 0-3 of the zero-final-rate pipelines (see_77) it
# adds the one pass at the recipe's wall time with that last phase (see_78: 774 steps with min_lr_ratio=0.0
# from the equal-time one pass's lookup-phase models of seeds 0-4, see_72's), for the share at equal time.
# 2026-12-07: replaces chain84 (in git history). With the rate decayed to zero (see_76) seed 4's last phase
# ended steadier (step 500 to 600: recipe 47.8 -> 49.6, one pass 41.9 -> 43.1, CoT 51.7 -> 52.7; the one
# pass's count 90.7 at both) and the recipe's share was 68%. Before the 12-layer trio: seeds 0-3 of the
# three pipelines with that last phase (see_77, stems `see-deep-{lame-k16-readsrat,disc,cot}-lr0`), so the
# share with `min_lr_ratio=0.0` rests on five seeds.
# 2026-12-07: replaces chain83 (in git history). A rerun of seed 4's last phase moved the recipe's margin to
# half of CoT's gain from +5.5 to +0.4, and the rerun one pass's count fell from 84.0 at step 500 to 46.7 at
# step 600, with the learning rate still at a tenth of its peak. Before the 12-layer trio, the same three
# last phases with the rate decayed to zero (see_76, `min_lr_ratio=0.0`): is the end of a run steadier?
# 2026-12-07: replaces chain82 (in git history). After the neighbour-seeing stage 0's one pass (see_71) it
# adds the weight average (`ema_decay=0.99`) on the last phase of seed 4's recipe, one pass and CoT (see_75,
# from their lookup-phase models): does the score at the end of a run move less, or rise, when the saved
# weights are the average of the last few hundred steps rather than the last step's?
# 2026-12-07: replaces chain81 (in git history). Seed 1 of K = 4 at equal time (see_74) fell far below the
# one pass at equal time (reasoning -15.2 [-17.8, -12.3], counting by attribute -56.7) where seed 0 was
# +5.3: over two seeds -4.9, so three more seeds would each need about +11.5 for the five-seed mean to reach half
# of CoT's gain. Seeds 2-4 are dropped; the K ablation at equal time goes on with K = 2 and 1.
# 2026-12-07: replaces chain80 (in git history). K = 4 at equal wall time came out above the one pass at
# the recipe's time in seed 0 (reasoning +5.3 [+2.4, +8.3], validation 77.4 against 74.9), where K = 4 at
# equal steps gained nothing: one seed of a recipe whose seeds spread this much says little, so seeds
# 1-4 of it (see_74) are interleaved with the rest of the K ablation at equal time (K = 2, 1).
# 2026-12-07: replaces chain79 (in git history). After the decoder ablation at equal wall time (see_70)
# it adds the rationale recipe's K ablation at equal wall time (see_73, seed 0, `see-deep-lame-kK-readsrat-ew`):
# K = 8, 4, 2 and 1 given the K = 16 recipe's training time, from the median step per phase of the
# equal-steps runs on this machine (K = 16: see-deep-lame-k16-readsrat-*-s4, 0.599 / 0.608 / 0.629 s;
# K = 8, 4, 2, 1: see-deep-lame-kK-readsrat-*): 1.08x, 1.08x, 1.15x and 1.20x the steps.
# chain79 added the one pass at the recipe's wall time (see_72, seeds 0-4, 1.29x the steps), the decoder
# ablation at equal wall time (see_70, 1.14x) and the scene head that sees its neighbours from scratch
# (stage 0 with scene_head_context=3, then see_71), before the 12-layer search (see_59, see_64).
# chain73 and chain96 were written on new machines whose runs/ did not carry over: every step starts from stage 0
# (runs/see/stage0-scene, a copy of assets/models/stage0-scene) or from a stage 0 trained here.
# Resumable: each step skips what is done.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs runs/see
test -d runs/see/stage0-scene/model || { mkdir -p runs/see/stage0-scene && cp -r assets/models/stage0-scene runs/see/stage0-scene/model; }
for stem in see-deep-disc-pos see-deep-lame-k16-readsrat-pos; do
  FIRST_ONLY=1 scripts/queues/pipeline.sh see_84.json "$stem" || exit 1
done
scripts/queues/chain_pairs.sh see_85.json see-deep-disc-pos-rel-bind-mixed see-deep-lame-k16-readsrat-pos-rel-bind-mixed || exit 1
scripts/queues/chain_pairs.sh see_87.json see-deep-disc-pos-relp-bind-mixed || exit 1
pos_trio() {
  FIRST_ONLY=1 scripts/queues/pipeline.sh see_88.json see-deep-lame-k16-readsrat-pos "$1" || return 1
  scripts/queues/chain_pairs.sh see_88.json "see-deep-lame-k16-readsrat-pos-rel-bind-mixed$1" || return 1
  FIRST_ONLY=1 scripts/queues/pipeline.sh see_88.json see-deep-disc-pos "$1" || return 1
  scripts/queues/chain_pairs.sh see_88.json "see-deep-disc-pos-relp-bind-mixed$1" || return 1
  FIRST_ONLY=1 scripts/queues/pipeline.sh see_88.json see-deep-cot-pos "$1" || return 1
  scripts/queues/chain_pairs.sh see_88.json "see-deep-cot-pos-rel-bind-mixed$1"
}
pos_trio -s2 || exit 1
scripts/queues/chain_pairs.sh see_89.json see-deep-lame-k16-readsrat-pos-rel-drw5-bind-mixed-s1 \
  see-deep-lame-k16-readsrat-pos-rel18-bind-mixed-s1 \
  see-deep-disc-pos-relp-ew-bind-mixed see-deep-disc-pos-relp-ew-bind-mixed-s1 || exit 1
for s in -s3 -s4; do pos_trio "$s" || exit 1; done
scripts/queues/chain_pairs.sh see_89.json see-deep-disc-pos-relp18-bind-mixed-s1 see-deep-cot-pos-rel18-bind-mixed-s1 || exit 1
FIRST_ONLY=1 scripts/queues/pipeline.sh see_84.json see-deep-cot-pos || exit 1
scripts/queues/chain_pairs.sh see_87.json see-deep-cot-pos-relp-bind-mixed see-deep-lame-k16-readsrat-pos-relp-bind-mixed || exit 1
lr0_trio() {
  for stem in see-deep-lame-k16-readsrat-lr0 see-deep-disc-lr0 see-deep-cot-lr0; do
    scripts/queues/pipeline.sh see_77.json "$stem" "$1" || return 1
  done
}
rw_trio() {
  scripts/queues/chain_pairs.sh see_80.json "see-deep-lame-k16-readsrat-rw-bind-mixed$1" "see-deep-disc-rw-bind-mixed$1" \
    "see-deep-cot-rw-bind-mixed$1"
}
deeper_trio() {
  for stem in see-deeper-lame-k16-readsrat see-deeper-discriminative see-deeper-cot; do
    FIRST_ONLY=1 scripts/queues/pipeline.sh see_82.json "$stem" || return 1
  done
  scripts/queues/chain_pairs.sh see_82.json see-deeper-lame-k16-readsrat-rw-bind-mixed see-deeper-disc-rw-bind-mixed \
    see-deeper-cot-rw-bind-mixed
}
FIRST_ONLY=1 lr0_trio -s2 || exit 1
rw_trio -s2 || exit 1
deeper_trio || exit 1
FIRST_ONLY=1 lr0_trio -s3 || exit 1
rw_trio -s3 || exit 1
touch logs/chain101.done
