#!/usr/bin/env bash
# Install edge-agent as a systemd service on Raspberry Pi OS (Debian bookworm,
# arm64) or Ubuntu / NVIDIA JetPack.
#
#   sudo deploy/install.sh                      # from a checkout of the repository
#   sudo deploy/install.sh --wheel edge_agent-0.1.0-py3-none-any.whl
#   sudo deploy/install.sh --wheels /media/usb/wheels --model /media/usb/yolox_nano.onnx   # no internet
#   deploy/install.sh --prefix /tmp/root --no-apt --no-venv --no-model   # a tree only
#
# What it does, each step printed as it runs:
#   1. Debian packages (python3, python3-venv, ...) with apt-get
#   2. the system user `edge-agent` (in the `video` group, for hardware decode)
#   3. a venv in /opt/edge-agent/venv with the project installed
#   4. the model in /var/lib/edge-agent/models (sha256 checked; the manifests ship in the package):
#      fetched by name, or copied from --model FILE (a box without internet)
#   5. /etc/edge-agent/config.yaml from deploy/config.example.yaml (never overwritten),
#      /etc/edge-agent/env and /etc/edge-agent/mqtt.pass (mode 0600, never overwritten)
#   6. /var/lib/edge-agent for the outbox and evidence
#   7. the unit /etc/systemd/system/edge-agent.service, enabled (and started
#      once the config has been edited)
#   8. checks: `edge-agent validate` on the installed config, then `edge-agent doctor`
#
# A step that needs the internet and cannot have it (the model download) does not stop the
# others: the config, secrets and unit are written all the same, and the end says what is
# missing and how to bring it (exit 1).
#
# With --prefix DIR everything lands under DIR (tests, building an image): no
# apt-get (the command is printed), no useradd, no chown, no systemctl.
# Running it again is safe: it upgrades the venv and the unit and keeps the
# config and secrets.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/
DO_APT=1
DO_VENV=1
DO_MODEL=1
DO_START=1
DO_DOCTOR=1
WHEEL=""
WHEELS=""
MODEL_NAME=yolox-nano
MODEL_FILE=""
PYTHON=python3
ORT_GPU=""
SERVICE_USER=edge-agent
APT_PACKAGES=(python3 python3-venv python3-pip ca-certificates tzdata)

usage() {
    cat <<'EOF'
usage: install.sh [options]

  --prefix DIR             install under DIR instead of / (no apt, useradd, chown, systemctl)
  --no-apt                 do not install Debian packages
  --no-venv                do not create the venv or install the project
  --wheel PATH             install this wheel (or sdist) instead of the repository checkout
  --python PY              the Python that creates the venv (default: python3, 3.10 or newer)
  --onnxruntime-gpu SPEC   replace onnxruntime with onnxruntime-gpu: a wheel file, a URL or a
                           requirement (Jetson; set PIP_EXTRA_INDEX_URL for an index)
  --wheels DIR             install Python packages from this folder only, never from an
                           index (a box without internet; the wheels of requirements/runtime.lock)
  --no-model               do not fetch the model
  --model NAME|FILE        the model manifest to fetch (default: yolox-nano), or a model file
                           to install from this machine (no internet needed): a shipped model
                           is recognised by its sha256, any other becomes model.path with its
                           model.sha256 in a new config
  --no-start               enable the service but do not start or restart it
  --no-doctor              do not run `edge-agent doctor` at the end
  -h, --help               this text

Environment: EDGE_AGENT_MODEL_CACHE=DIR fetches the model from a folder holding its file
instead of the internet (offline boxes); --model FILE is the same for one file.
EOF
}

die() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 1
}

step() {
    printf '==> %s\n' "$*"
}

# Print a command, then run it.
run() {
    printf '    $ %s\n' "$*"
    "$@"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX="$2"; shift 2 ;;
        --prefix=*) PREFIX="${1#*=}"; shift ;;
        --no-apt) DO_APT=0; shift ;;
        --no-venv) DO_VENV=0; shift ;;
        --no-model) DO_MODEL=0; shift ;;
        --no-start) DO_START=0; shift ;;
        --no-doctor) DO_DOCTOR=0; shift ;;
        --wheels) [ $# -ge 2 ] || die "--wheels needs a folder"; WHEELS="$2"; shift 2 ;;
        --wheels=*) WHEELS="${1#*=}"; shift ;;
        --wheel) [ $# -ge 2 ] || die "--wheel needs a file"; WHEEL="$2"; shift 2 ;;
        --wheel=*) WHEEL="${1#*=}"; shift ;;
        --python) [ $# -ge 2 ] || die "--python needs an interpreter"; PYTHON="$2"; shift 2 ;;
        --python=*) PYTHON="${1#*=}"; shift ;;
        --onnxruntime-gpu) [ $# -ge 2 ] || die "--onnxruntime-gpu needs a wheel or requirement"; ORT_GPU="$2"; shift 2 ;;
        --onnxruntime-gpu=*) ORT_GPU="${1#*=}"; shift ;;
        --model) [ $# -ge 2 ] || die "--model needs a name"; MODEL_NAME="$2"; shift 2 ;;
        --model=*) MODEL_NAME="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

[ -n "$PREFIX" ] || die "--prefix must not be empty"
case "$PREFIX" in
    /*) ;;
    *) PREFIX="$(pwd)/$PREFIX" ;;
esac
# ROOT is "" for a real install, so "$ROOT/etc" is "/etc".
ROOT="${PREFIX%/}"
REAL=0
[ -z "$ROOT" ] && REAL=1

OPT="$ROOT/opt/edge-agent"
VENV="$OPT/venv"
ETC="$ROOT/etc/edge-agent"
STATE="$ROOT/var/lib/edge-agent"
# The agent's default model directory on a box (edge_agent/pipeline/detect/models.py, model_dir).
MODELS="$STATE/models"
# Where earlier installs kept manifests and model; its model files move to $MODELS.
OLD_MODELS="$OPT/models"
UNIT_DIR="$ROOT/etc/systemd/system"

if [ "$REAL" = 1 ] && [ "$(id -u)" != 0 ]; then
    die "installing into / needs root: run it with sudo (or use --prefix DIR)"
fi
[ -f "$REPO/deploy/edge-agent.service" ] || die "run it from the repository: $REPO/deploy/edge-agent.service is missing"
if [ -n "$WHEEL" ] && [ ! -e "$WHEEL" ]; then
    die "--wheel $WHEEL: no such file"
fi
if [ -n "$WHEELS" ]; then
    [ -d "$WHEELS" ] || die "--wheels $WHEELS: no such folder"
    WHEELS="$(cd "$WHEELS" && pwd)"
    # pip reads these itself: only that folder, never an index
    export PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELS"
fi
# --model: a file on this machine, or a manifest name
case "$MODEL_NAME" in
    */*|*.onnx)
        [ -f "$MODEL_NAME" ] || die "--model $MODEL_NAME: no such file"
        MODEL_FILE="$(cd "$(dirname "$MODEL_NAME")" && pwd)/$(basename "$MODEL_NAME")"
        ;;
esac

step "edge-agent: installing into ${PREFIX} from ${REPO}"
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    os_name="$(. /etc/os-release && printf '%s' "${PRETTY_NAME:-unknown}")"
    printf '    system: %s (%s)\n' "$os_name" "$(uname -m)"
fi
if [ -e /etc/nv_tegra_release ]; then
    printf '    NVIDIA Jetson found: for the GPU pass --onnxruntime-gpu (see deploy/README.md)\n'
fi

# --- 1. Debian packages ---------------------------------------------------------
step "Debian packages: ${APT_PACKAGES[*]}"
if [ "$DO_APT" = 0 ]; then
    printf '    skipped (--no-apt)\n'
elif [ "$REAL" = 0 ]; then
    printf '    skipped (--prefix); on the target run:\n'
    printf '    apt-get install -y --no-install-recommends %s\n' "${APT_PACKAGES[*]}"
elif ! command -v apt-get >/dev/null 2>&1; then
    die "apt-get not found: install ${APT_PACKAGES[*]} by hand and pass --no-apt"
else
    missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        printf '    all installed\n'
    else
        run apt-get update -qq
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
fi

# --- 2. the service user ----------------------------------------------------------
step "system user ${SERVICE_USER}"
if [ "$REAL" = 0 ]; then
    printf '    skipped (--prefix)\n'
elif id -u "$SERVICE_USER" >/dev/null 2>&1; then
    printf '    exists\n'
else
    groups_opt=()
    if getent group video >/dev/null 2>&1; then
        groups_opt=(--groups video)
    fi
    run useradd --system --user-group "${groups_opt[@]}" --home-dir /var/lib/edge-agent \
        --no-create-home --shell /usr/sbin/nologin --comment "edge-agent daemon" "$SERVICE_USER"
fi

# --- 3. venv and the project ------------------------------------------------------
run install -d -m 0755 "$OPT"
step "venv ${VENV}"
if [ "$DO_VENV" = 0 ]; then
    printf '    skipped (--no-venv)\n'
else
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (install python3, or pass --python)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || die "edge-agent needs Python 3.10 or newer; $PYTHON is $("$PYTHON" -V 2>&1)"
    if [ ! -x "$VENV/bin/python" ]; then
        run "$PYTHON" -m venv "$VENV"
    fi
    # The same package versions on every box: the runtime lock, every file checked by its hash,
    # then the project itself without dependencies (requirements/README.md).
    run "$VENV/bin/python" -m pip install --quiet --require-hashes --no-deps -r "$REPO/requirements/build.lock"
    run "$VENV/bin/python" -m pip install --quiet --require-hashes --no-deps -r "$REPO/requirements/runtime.lock"
    if [ -n "$WHEEL" ]; then
        run "$VENV/bin/python" -m pip install --quiet --no-deps --force-reinstall "$WHEEL"
    else
        run "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation --force-reinstall "$REPO"
    fi
    run "$VENV/bin/python" -m pip check
    if [ -n "$ORT_GPU" ]; then
        step "onnxruntime-gpu: ${ORT_GPU}"
        run "$VENV/bin/python" -m pip uninstall --quiet -y onnxruntime
        run "$VENV/bin/python" -m pip install --quiet "$ORT_GPU"
        run "$VENV/bin/python" -c 'import onnxruntime as ort; print("    providers:", ort.get_available_providers())'
    fi
fi

# --- 4. the model ----------------------------------------------------------------
if [ -f "$REPO/deploy/README.md" ]; then
    run install -m 0644 "$REPO/deploy/README.md" "$OPT/README.md"
fi
step "model ${MODEL_NAME} into ${MODELS}"
# The state directory is the service user's, and so is the model folder in it: a remote
# model-update puts the new model there. Every load checks the file's sha256 against its
# manifest (or model.sha256), so a changed file is refused, never run.
run install -d -m 0750 "$STATE"
run install -d -m 0755 "$MODELS"
if [ "$REAL" = 1 ]; then
    run chown "$SERVICE_USER:$SERVICE_USER" "$MODELS"
fi
if [ -d "$OLD_MODELS" ]; then
    # An earlier install: its model files move, its copies of the shipped manifests go.
    for onnx in "$OLD_MODELS"/*.onnx; do
        if [ -e "$onnx" ] && [ ! -e "$MODELS/$(basename "$onnx")" ]; then
            run mv "$onnx" "$MODELS/"
        fi
    done
    for manifest in "$REPO"/models/*.yaml; do
        old="$OLD_MODELS/$(basename "$manifest")"
        if [ -e "$old" ]; then
            run rm -f "$old"
        fi
    done
    rmdir "$OLD_MODELS" 2>/dev/null || printf '    %s still holds files of your own; the agent no longer reads it\n' "$OLD_MODELS"
fi
MODEL_MISSING=""
CUSTOM_PATH=""
CUSTOM_SHA=""
if [ "$DO_MODEL" = 0 ]; then
    printf '    skipped (--no-model)\n'
elif [ -n "$MODEL_FILE" ]; then
    # A file brought to the box: a shipped model is recognised by its sha256 and installed under
    # its manifest's file name; any other is a custom model (model.path, checked by model.sha256).
    sha="$(sha256sum "$MODEL_FILE" | cut -d' ' -f1)"
    manifest="$(grep -l "^sha256: $sha\$" "$REPO"/models/*.yaml 2>/dev/null | head -n 1 || true)"
    if [ -n "$manifest" ]; then
        MODEL_NAME="$(sed -n 's/^name: *//p' "$manifest")"
        file="$(sed -n 's/^file: *//p' "$manifest")"
        printf '    %s is the model %s (its sha256 matches the manifest)\n' "$MODEL_FILE" "$MODEL_NAME"
        run install -m 0644 "$MODEL_FILE" "$MODELS/$file"
    else
        file="$(basename "$MODEL_FILE")"
        CUSTOM_PATH="/var/lib/edge-agent/models/$file"
        CUSTOM_SHA="$sha"
        printf '    %s is a custom model (sha256 %s)\n' "$MODEL_FILE" "$sha"
        run install -m 0644 "$MODEL_FILE" "$MODELS/$file"
    fi
elif [ ! -x "$VENV/bin/edge-agent" ]; then
    die "fetching the model needs the venv ($VENV/bin/edge-agent is missing); pass --no-model to skip"
else
    if ! run env EDGE_AGENT_MODEL_DIR="$MODELS" "$VENV/bin/edge-agent" models fetch "$MODEL_NAME"; then
        MODEL_MISSING="$MODEL_NAME"
        printf '    the model could not be fetched (no internet here?); the install goes on without it\n'
    fi
    # The fetch writes through a private temporary file; the service user must read it.
    for onnx in "$MODELS"/*.onnx; do
        if [ -e "$onnx" ]; then
            run chmod 0644 "$onnx"
        fi
    done
fi

# --- 5. config and secrets --------------------------------------------------------
step "config ${ETC}"
run install -d -m 0755 "$ETC"
new_config=0
if [ -e "$ETC/config.yaml" ]; then
    printf '    %s exists, kept\n' "$ETC/config.yaml"
else
    run install -m 0644 "$REPO/deploy/config.example.yaml" "$ETC/config.yaml"
    new_config=1
    if [ -n "$CUSTOM_PATH" ]; then
        printf '    model: path %s, sha256 %s\n' "$CUSTOM_PATH" "$CUSTOM_SHA"
        sed -i "s|^  name: yolox-nano\$|  path: $CUSTOM_PATH\n  sha256: $CUSTOM_SHA|" "$ETC/config.yaml"
    elif [ "$MODEL_NAME" != yolox-nano ]; then
        sed -i "s|^  name: yolox-nano\$|  name: $MODEL_NAME|" "$ETC/config.yaml"
    fi
fi
if [ "$new_config" = 0 ] && [ -n "$CUSTOM_PATH" ]; then
    printf '    to use the new model, set in %s:\n' "$ETC/config.yaml"
    printf '      model: {path: %s, sha256: %s}\n' "$CUSTOM_PATH" "$CUSTOM_SHA"
fi
if [ "$REAL" = 1 ]; then
    # Remote config-set writes the config (and its .previous copy) beside itself: the folder
    # is the service group's, sticky, so the agent can replace only the files it owns.
    run chown "root:$SERVICE_USER" "$ETC"
    run chmod 1775 "$ETC"
    run chown "$SERVICE_USER:$SERVICE_USER" "$ETC/config.yaml"
fi

# A secrets file: created once with mode 0600 and never overwritten; the mode
# and owner are put right on every run.
secret_file() {
    local path="$1" owner="$2" content="$3"
    if [ -e "$path" ]; then
        printf '    %s exists, kept\n' "$path"
    else
        printf '    creating %s (0600)\n' "$path"
        (umask 077 && printf '%s' "$content" >"$path")
    fi
    run chmod 0600 "$path"
    if [ "$REAL" = 1 ]; then
        run chown "$owner:$owner" "$path"
    fi
}

# The ${KEY} below is literal text for the reader, not a shell expansion.
# shellcheck disable=SC2016
env_template='# Environment of the edge-agent service (systemd EnvironmentFile, mode 0600).
# KEY=value, one a line, no quotes. config.yaml refers to these as ${KEY}.
# After a change: sudo systemctl restart edge-agent
#EDGE_MQTT_USER=edge-01
#CAM1_PASS=
'
# systemd reads this file before dropping privileges: it stays root's.
secret_file "$ETC/env" root "$env_template"
# The agent itself reads the MQTT password (mqtt.password_file).
secret_file "$ETC/mqtt.pass" "$SERVICE_USER" ""

# --- 6. state directory -----------------------------------------------------------
step "state ${STATE}"
run install -d -m 0750 "$STATE" "$STATE/evidence"
if [ "$REAL" = 1 ]; then
    run chown "$SERVICE_USER:$SERVICE_USER" "$STATE" "$STATE/evidence"
fi

# --- 7. the unit ------------------------------------------------------------------
step "systemd unit ${UNIT_DIR}/edge-agent.service"
run install -d -m 0755 "$UNIT_DIR"
run install -m 0644 "$REPO/deploy/edge-agent.service" "$UNIT_DIR/edge-agent.service"

if [ "$REAL" = 0 ]; then
    printf '    not enabled (--prefix)\n'
elif [ ! -d /run/systemd/system ]; then
    printf '    systemd is not running here: enable it on the target with\n'
    printf '    systemctl enable --now edge-agent\n'
else
    was_active=0
    systemctl is-active --quiet edge-agent && was_active=1
    run systemctl daemon-reload
    if [ "$DO_START" = 0 ]; then
        run systemctl enable edge-agent
    elif [ "$new_config" = 1 ]; then
        # The example config has placeholder cameras and no secrets yet.
        run systemctl enable edge-agent
        printf '    not started yet: the config is the example\n'
    elif [ "$was_active" = 1 ]; then
        run systemctl enable edge-agent
        run systemctl restart edge-agent
    else
        run systemctl enable --now edge-agent
    fi
fi

# --- 8. checks --------------------------------------------------------------------
step "check: edge-agent validate ${ETC}/config.yaml"
config_ok=0
if [ ! -x "$VENV/bin/edge-agent" ]; then
    printf '    skipped (no venv)\n'
else
    # As the service sees it: the variables of the env file, the model folder of this install.
    check() {
        # $1 inside the single quotes is the inner shell's own argument
        # shellcheck disable=SC2016
        env EDGE_AGENT_MODEL_DIR="$MODELS" sh -c 'set -a; [ -r "$1" ] && . "$1"; shift; exec "$@"' \
            check "$ETC/env" "$VENV/bin/edge-agent" "$@"
    }
    if check validate "$ETC/config.yaml" 2>&1 | sed 's/^/    /'; then
        config_ok=1
    elif [ "$new_config" = 1 ]; then
        printf '    (expected on a first install: the config is the example; edit it, then run validate again)\n'
    fi
fi
if [ "$config_ok" = 1 ] && [ "$DO_DOCTOR" = 1 ]; then
    step "check: edge-agent doctor"
    # advice for the installer, not a reason to undo the install
    check doctor --config "$ETC/config.yaml" 2>&1 | sed 's/^/    /' || true
fi

if [ -n "$MODEL_MISSING" ]; then
    printf '\ninstall.sh: installed, but without the model %s: there was no way to download it.\n' "$MODEL_MISSING" >&2
    printf 'Copy the model file onto this box (a USB stick) and run again with\n' >&2
    printf '  %s --model /path/to/the-model.onnx\n' "$0" >&2
    printf 'or with EDGE_AGENT_MODEL_CACHE=/folder/holding/it in the environment.\n' >&2
    exit 1
fi

step "done"
if [ "$new_config" = 1 ]; then
    cat <<EOF
Next:
  1. edit $ETC/config.yaml (site, device, camera url, zones, broker)
  2. put the secrets into $ETC/env (CAM1_PASS=..., EDGE_MQTT_USER=...)
     and the MQTT password into $ETC/mqtt.pass
  3. sudo systemctl start edge-agent && journalctl -u edge-agent -f
EOF
fi
