#!/usr/bin/env bash
# The standing mutation check: break each algorithm on purpose and make sure a test notices.
#
#   scripts/mutation-check.sh                 every mutant of tests/mutations/mutants.txt
#   scripts/mutation-check.sh --fast          only the mutants tagged "fast" (unit tests, what CI runs)
#   scripts/mutation-check.sh NAME [NAME...]  only these mutants
#   scripts/mutation-check.sh --list          print the mutants and exit
#
# For each mutant, tests/mutations/NAME.patch is applied to a temporary copy of the working tree (tracked
# and untracked, not ignored, files: what you have now, not the last commit), and only the tests named
# for it run, with `pytest -x -q`. A failing test kills the mutant; if they all pass, it survived.
# The working tree is never modified (also not on Ctrl-C: the copy is deleted on exit). First the same
# tests run on the unmodified copy: they must pass, or every mutant would look killed.
# Ends with one line `N killed, M survived`, the survivors named above it. Exit status: 0 when every
# mutant was killed, 1 when one survived or a patch no longer applies, 2 on a usage error or a red baseline.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
list="$root/tests/mutations/mutants.txt"
PY=${PYTHON:-python3}
fast=0
only=()
for arg in "$@"; do
    case "$arg" in
        --fast) fast=1 ;;
        --list) grep -v '^\s*#' "$list" | grep -v '^\s*$'; exit 0 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "mutation-check: unknown option $arg" >&2; exit 2 ;;
        *) only+=("$arg") ;;
    esac
done

# -- the mutants to run: name, tests, description ----------------------------------------------------------
trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; printf '%s' "${s%"${s##*[![:space:]]}"}"; }
names=(); targets=(); descs=()
while IFS='|' read -r name speed tests desc; do
    name=$(trim "$name"); speed=$(trim "$speed"); tests=$(trim "$tests")
    [[ -z "$name" || "$name" == \#* ]] && continue
    if ((${#only[@]})); then
        keep=0; for o in "${only[@]}"; do [[ "$o" == "$name" ]] && keep=1; done
        ((keep)) || continue
    elif ((fast)) && [[ "$speed" != fast ]]; then
        continue
    fi
    if [[ ! -f "$root/tests/mutations/$name.patch" ]]; then
        echo "mutation-check: $name is listed but tests/mutations/$name.patch is missing" >&2; exit 2
    fi
    names+=("$name"); targets+=("$tests"); descs+=("$(trim "$desc")")
done < "$list"
for o in "${only[@]}"; do
    found=0; for n in "${names[@]}"; do [[ "$n" == "$o" ]] && found=1; done
    ((found)) || { echo "mutation-check: no mutant named $o in tests/mutations/mutants.txt" >&2; exit 2; }
done
((${#names[@]})) || { echo "mutation-check: no mutants selected" >&2; exit 2; }

# -- a private copy of the tree -----------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/arwave-mutants.XXXXXX")
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
trap 'echo; echo "mutation-check: interrupted (the working tree was never modified)"; exit 130' INT TERM
tree="$tmp/tree"
mkdir -p "$tree"
(cd "$root" && git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$tree"

run_tests() {  # run_tests LOG TESTS...: pytest in the copy, arwave imported from the copy
    local log=$1; shift
    (cd "$tree" && PYTHONPATH="$tree" PYTHONDONTWRITEBYTECODE=1 timeout 900 nice -n 19 \
        "$PY" -m pytest -x -q -p no:cacheprovider "$@") >"$log" 2>&1
}

where=$(cd "$tree" && PYTHONPATH="$tree" "$PY" -c 'import arwave, os; print(os.path.dirname(arwave.__file__))')
if [[ "$where" != "$tree/arwave" ]]; then
    echo "mutation-check: python imports arwave from $where, not from the copy; aborting" >&2; exit 2
fi

# -- baseline: the selected tests pass on the unmodified copy ------------------------------------------------
all_tests=$(printf '%s\n' "${targets[@]}" | tr ' ' '\n' | sort -u | tr '\n' ' ')
echo "baseline: $all_tests"
if ! run_tests "$tmp/baseline.log" $all_tests; then
    tail -n 30 "$tmp/baseline.log"
    echo "mutation-check: the tests fail without any mutation; fix them first" >&2
    exit 2
fi

# -- the mutants ---------------------------------------------------------------------------------------------
killed=0; survived=(); broken=()
for i in "${!names[@]}"; do
    name=${names[$i]}; patchfile="$root/tests/mutations/$name.patch"
    if ! patch -p1 -s -f --dry-run -d "$tree" <"$patchfile" >/dev/null 2>&1; then
        printf '%-28s PATCH DOES NOT APPLY (regenerate tests/mutations/%s.patch)\n' "$name" "$name"
        broken+=("$name"); continue
    fi
    patch -p1 -s -f -d "$tree" <"$patchfile" >/dev/null
    start=$SECONDS
    run_tests "$tmp/$name.log" ${targets[$i]}
    rc=$?
    patch -p1 -s -f -R -d "$tree" <"$patchfile" >/dev/null || { echo "mutation-check: could not undo $name" >&2; exit 2; }
    secs=$((SECONDS - start))
    if ((rc == 0)); then
        printf '%-28s SURVIVED  %3ss  %s\n' "$name" "$secs" "${descs[$i]}"
        survived+=("$name")
    elif ((rc == 1 || rc == 2)); then   # 1: a test failed; 2: collection error (e.g. the mutant does not import)
        by=$(grep -m1 -E '^(FAILED|ERROR) ' "$tmp/$name.log" | sed -E 's/^(FAILED|ERROR) //; s/ - .*//')
        printf '%-28s killed    %3ss  by %s\n' "$name" "$secs" "${by:-pytest exit $rc}"
        killed=$((killed + 1))
    else
        printf '%-28s ERROR     %3ss  pytest exit %s (see below)\n' "$name" "$secs" "$rc"
        tail -n 15 "$tmp/$name.log"
        broken+=("$name")
    fi
done

echo
((${#broken[@]})) && echo "did not run: ${broken[*]}"
((${#survived[@]})) && echo "survivors: ${survived[*]}"
echo "$killed killed, ${#survived[@]} survived"
((${#survived[@]} == 0 && ${#broken[@]} == 0))
