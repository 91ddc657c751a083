#!/usr/bin/env bash
# The whole pipeline on the tiny grid of tests/ci-params.yaml, in scratch clones of HEAD (make pipeline-check):
# 1. dvc repro builds the book, and a second dvc status is clean; every page of the book passes the browser check
#    (tests/browser_check.py: Debian's chromium at 1400 px), which fails on a copy with one image broken;
#    dvc metrics show and zeroflow plots (dvc plots show, offline) show the train stages' summaries;
# 2. dvc push sends every output to a local-directory remote, and a fresh clone's dvc pull restores them:
#    its dvc status is clean without training anything;
# 3. in that clone, a one-value edit (optimizers.zo-sgd.lr) makes only the stages holding zo-sgd cells
#    stale, and rerunning one of them runs only its zo-sgd cells;
# 4. back in the first clone, the README's dvc commands run exactly as written (tests/readme_commands.py),
#    experiments and the queue included; with the build's dvc.lock committed as the README says (main tracks
#    none), dvc metrics diff and dvc exp show read the baseline's metrics.
set -euo pipefail
repo=$(pwd)
build="$repo/build"
rm -rf "$build/pipeline-check" "$build/pipeline-pull" "$build/pipeline-remote"
git clone --quiet "$repo" "$build/pipeline-check"
cp tests/ci-params.yaml "$build/pipeline-check/params.yaml"
git_commit() { git -c user.name=pipeline-check -c user.email=pipeline-check@localhost commit --quiet "$@"; }
# fails when the text holds the pattern (`! grep` would not: set -e ignores a negated command's status)
absent() { if grep -qE -- "$1" <<<"$2"; then echo "pipeline-check: unexpected '$1' in:"; echo "$2"; exit 1; fi; }
up_to_date() { local status; status=$(dvc status); echo "$status"; grep -q "Data and pipelines are up to date" <<<"$status"; }

# each clone runs its own zeroflow_core, not the editable install's (the checkout this script runs from)
cd "$build/pipeline-check"
export PYTHONPATH="$PWD"
dvc repro
test -s site/latest/index.html
up_to_date
python tests/browser_check.py site/latest --shots "$build/screens" --shot table_1=table_1.html \
  --shot provenance='figure_2.html#.zeroflow-provenance'
# the check must fail on a broken page: the same book with one figure's file emptied
broken="$build/pipeline-broken-book"
rm -rf "$broken" && cp -r site/latest "$broken"
image=$(find "$broken/_images" -name '*.png' | sort | head -1)
: > "$image"
if found=$(python tests/browser_check.py "$broken" 2>&1); then
  echo "pipeline-check: the browser check passed a book with a broken image:"; echo "$found"; exit 1
fi
echo "$found" | grep -E "^FAIL|broken image"
grep -q "broken image: _images/$(basename "$image")" <<<"$found"
# the published version holds the tables and statements it shows: the build compares equal with it
zeroflow compare site/latest
# dvc metrics show: a row per method × dataset; zeroflow plots: the curves on a page with its own scripts
# (captured first: `grep -q` stops reading at its match, and pipefail would fail on the writer's SIGPIPE)
metrics=$(dvc metrics show)
grep -q "runs/metrics/ease-hues.json" <<<"$metrics"
zeroflow plots --out build/plots
grep -q "runs/plots/loss/ease-hues.csv" build/plots/index.html
absent "cdn.jsdelivr" "$(cat build/plots/index.html)"

dvc remote add --default scratch "$build/pipeline-remote"
git add params.yaml dvc.lock .dvc/config
git_commit -m "the tiny grid's results, on the scratch remote"
dvc push

git clone --quiet "$build/pipeline-check" "$build/pipeline-pull"
cd "$build/pipeline-pull"
export PYTHONPATH="$PWD"
dvc pull
test -s site/latest/index.html
up_to_date
# the published version holds the tables and statements it shows: the build compares equal with it
zeroflow compare site/latest

python - <<'PY'
import yaml
params = yaml.safe_load(open("params.yaml"))
params["optimizers"]["zo-sgd"] = {"lr": 0.002}
open("params.yaml", "w").write(yaml.safe_dump(params, sort_keys=False))
PY
stale=$(dvc status | grep -E '^[a-z_]+(@[a-z0-9_-]+)?:' | tr -d ':' | sort | tr '\n' ' ')
echo "stale after the edit: $stale"
test "$stale" = "ablation@budget ablation@enhancements ablation@history ablation@query_budget ablation@sparsity ablation@zo_scope check_params train@ease-hues train@finetune-hues "
out=$(dvc repro --single-item check_params train@ease-hues 2>&1)
echo "$out"
grep -q "runs/train/ease-hues/: 2 cells run" <<<"$out"

cd "$build/pipeline-check"
export PYTHONPATH="$PWD"
log="$build/readme-commands.log"
rm -f "$log"
while IFS= read -r command; do
  echo "+ $command" | tee -a "$log"
  bash -c "$command" < /dev/null 2>&1 | tee -a "$log"
  if [[ $command == "dvc queue start"* ]]; then  # the README's reader waits for the queue; so does this check
    for _ in $(seq 120); do status=$(dvc queue status); grep -qE "Queued|Running" <<<"$status" || break; sleep 10; done
  fi
done < <(python tests/readme_commands.py pipeline)
grep -q "optimizers.zo-sgd.lr *0.001 *0.002" "$log"                        # dvc params diff
test "$(dvc queue status | grep -c Success)" = 2                             # both queued experiments ran
exp_show=$(python tests/readme_commands.py pipeline | grep '^dvc exp show' | tail -1)
table=$(bash -c "$exp_show")
grep -q "0.005" <<<"$table"                                                  # the README's table shows them
absent '!' "$table"                                      # and the baseline's metrics (the committed dvc.lock)
# dvc metrics diff after the one-value experiment: HEAD's column holds the committed build's value, not '-'
# (--all: an unchanged metric is listed too)
diff=$(dvc metrics diff --all 2>&1)
echo "$diff"
absent "failed to load" "$diff"
grep -qE "runs/metrics/ease-hues.json +zo-sgd.avg_acc +[0-9.]+ +[0-9.]+ " <<<"$diff"
echo "pipeline-check: book built and every page passed the browser check, status clean, push/pull round trip clean, one-value edit reran 2 of 4 cells, README's dvc commands ran"
