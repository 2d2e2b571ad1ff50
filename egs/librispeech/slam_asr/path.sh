# Sourced by run.sh: make the slamasr package and tools/ reachable from this recipe.
# The recipe dir may be a copy whose path.sh is a symlink: resolve it to the real checkout.
SLAMASR_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../.." && pwd)
export SLAMASR_ROOT
export PYTHONPATH="${SLAMASR_ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
export PYTHONUNBUFFERED=1
export PATH="${SLAMASR_ROOT}/tools:${PATH}"
