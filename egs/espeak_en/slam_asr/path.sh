# Sourced by run.sh: make the slamasr package and tools/ reachable from this recipe.
# SLAMASR_ROOT may be set by the caller (e.g. a test running a copy of this recipe elsewhere).
SLAMASR_ROOT=${SLAMASR_ROOT:-$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../.." && pwd)}
export SLAMASR_ROOT
export PYTHONPATH="${SLAMASR_ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
export PYTHONUNBUFFERED=1
export PATH="${SLAMASR_ROOT}/tools:${PATH}"
