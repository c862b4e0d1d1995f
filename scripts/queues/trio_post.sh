#!/bin/bash
# After a trio's last phases land (the rationale recipe, the one pass, CoT: see-deep-{lame-k16-readsrat,
# disc,cot}-TAG SUFFIX; the one pass's DISC_TAG where its last phase is another, chosen by validation): copy their scores into assets/results (collect.sh), write each model's
# errors on colour_of / shape_of and the relational subtasks (scripts/binding_errors.py, checked query by
# query against its test eval), and
# compare the three on the same queries (scripts/seed_compare.py: the recipe against the one pass, with
# CoT's gain and the recipe's share of it), for this seed and then pooled over every seed of the trio here
# (..._Nseeds.json). Skips a model whose run is not here, and what is written.
# Light but not free (CoT's relational analysis generates rationales): pause the chain first.
#     scripts/queues/trio_post.sh pos-rel-bind-mixed -s1 pos-relp-bind-mixed
cd "$(dirname "$0")/../.."
tag=$1 suffix=${2:-} disc_tag=${3:-$1}
R=assets/results
trio() { echo "see-deep-lame-k16-readsrat-$tag$1 see-deep-disc-$disc_tag$1 see-deep-cot-$tag$1"; }  # seed suffix $1
read -r lame disc cot <<< "$(trio "$suffix")"
scripts/queues/collect.sh "$lame" "$disc" "$cot"
for m in "$lame" "$disc" "$cot"; do
  out=$R/relations/relation_errors_$m.json
  test -f "$out" || ! test -f "runs/see/$m/eval_test.json" || .venv/bin/python scripts/binding_errors.py \
    "runs/see/$m/model" --subtasks colour_of,shape_of,relation_two_step,relation_attribute,refer \
    --reference "runs/see/$m/eval_test.json" --out "$out" || exit 1
done
short=${tag%-bind-mixed}
a=$R/seeds/eval_balanced_$lame.json b=$R/seeds/eval_balanced_$disc.json c=$R/seeds/eval_balanced_$cot.json
test -f "$a" && test -f "$b" && test -f "$c" || { echo "trio_post: not all three test evals are here yet" >&2; exit 1; }
.venv/bin/python scripts/seed_compare.py --a "$a" --b "$b" --c "$c" \
  --out "$R/seeds/compare_deep-lame-k16-readsrat-$tag${suffix}_vs_deep-disc-${disc_tag%-bind-mixed}_vs_deep-cot-${short}.json"
# Then the same comparison over every seed whose three test evals are here (seed 0 has no suffix),
# each query's Hit@1 averaged over the seeds: the share and its margin to half over seeds.
A=() B=() C=()
for s in "" -s1 -s2 -s3 -s4; do
  read -r x y z <<< "$(trio "$s")"
  x=$R/seeds/eval_balanced_$x.json y=$R/seeds/eval_balanced_$y.json z=$R/seeds/eval_balanced_$z.json
  test -f "$x" && test -f "$y" && test -f "$z" && { A+=("$x"); B+=("$y"); C+=("$z"); }
done
test ${#A[@]} -ge 2 || exit 0
.venv/bin/python scripts/seed_compare.py --a "${A[@]}" --b "${B[@]}" --c "${C[@]}" \
  --out "$R/seeds/compare_deep-lame-k16-readsrat-${tag}_vs_deep-disc-${disc_tag%-bind-mixed}_vs_deep-cot-${short}_${#A[@]}seeds.json"
