#!/bin/sh
# Build the Debian package of pacslb: build/deb/pacslb_<version>_<arch>.deb (make deb).
#
#   packaging/deb/build.sh [DEB_REVISION]      run from the repository, as root or not; needs the developer's venv
#
# The package is arch-specific: it carries a virtual environment under /usr/lib/pacslb/venv, made with Debian's
# /usr/bin/python3, holding exactly the run-time dependencies of requirements.lock (with their hashes) and pacslb
# itself; some of them are compiled (pydantic-core, cryptography, argon2-cffi, psutil). docs/operations.md says why.
set -eu

REVISION="${1:-1}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
DEV_PY="${DEV_PY:-$REPO/.venv/bin/python}"
SYSTEM_PY=/usr/bin/python3
PREFIX=/usr/lib/pacslb/venv

UPSTREAM="$("$DEV_PY" -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$REPO/pyproject.toml")"
VERSION="$UPSTREAM-$REVISION"
ARCH="$(dpkg --print-architecture)"
PYMINOR="$($SYSTEM_PY -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
PYNEXT="$($SYSTEM_PY -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1] + 1}")')"
OUT="${DEB_OUT:-$REPO/build/deb}"
ROOT="$OUT/root"
DEB="$OUT/pacslb_${VERSION}_${ARCH}.deb"

rm -rf "$ROOT" "$OUT/wheel"
mkdir -p "$ROOT/DEBIAN" "$OUT/wheel"

# the virtual environment, made where it is staged, then moved to its installed path in every file that names it
# (without pip of its own: the developer's pip installs into it, which saves making and removing one)
"$SYSTEM_PY" -m venv --without-pip "$ROOT$PREFIX"
TARGET_PIP="$DEV_PY -m pip --python $ROOT$PREFIX/bin/python"
"$DEV_PY" "$HERE/runtime_lock.py" "$REPO/requirements.lock" >"$OUT/runtime.lock"
"$DEV_PY" -m pip wheel -q --no-deps -w "$OUT/wheel" "$REPO"
rm -rf "$REPO/build/lib" "$REPO"/build/bdist.*  # setuptools builds the wheel in the tree: leave it as it was
$TARGET_PIP install -q --no-compile --no-deps --require-hashes -r "$OUT/runtime.lock"
$TARGET_PIP install -q --no-compile --no-deps "$OUT"/wheel/pacslb-*.whl
$TARGET_PIP check
rm -f "$ROOT$PREFIX"/bin/activate* "$ROOT$PREFIX"/bin/Activate.ps1
find "$ROOT$PREFIX" -name __pycache__ -type d -prune -exec rm -rf {} +
find "$ROOT$PREFIX" -name direct_url.json -delete
grep -rlF "$ROOT" "$ROOT$PREFIX" | while read -r file; do sed -i "s|$ROOT||g" "$file"; done
if grep -rqF "$ROOT" "$ROOT$PREFIX"; then echo "error: the staging path is still named in the virtual environment" >&2; exit 1; fi
# shared objects without their symbols (lintian: unstripped-binary-or-object), as dh_strip does
find "$ROOT$PREFIX" -type f -name "*.so*" -exec strip --strip-unneeded --remove-section=.comment --remove-section=.note {} +
# executables stay executable, everything else is not (lintian: executable-not-elf-or-script)
find "$ROOT$PREFIX" -type f -perm /111 ! -path "*/bin/*" ! -name "*.so*" -exec chmod a-x {} +

install -d "$ROOT/usr/bin" "$ROOT/lib/systemd/system" "$ROOT/etc/pacslb" "$ROOT/usr/share/doc/pacslb"
ln -s ../lib/pacslb/venv/bin/pacslb "$ROOT/usr/bin/pacslb"
install -m 0644 "$HERE/pacslb.service" "$ROOT/lib/systemd/system/pacslb.service"
install -m 0640 "$HERE/pacslb.yaml" "$ROOT/etc/pacslb/pacslb.yaml"
chmod 0750 "$ROOT/etc/pacslb"
install -m 0644 "$HERE/copyright" "$ROOT/usr/share/doc/pacslb/copyright"
install -d "$ROOT/usr/share/lintian/overrides"
install -m 0644 "$HERE/lintian-overrides" "$ROOT/usr/share/lintian/overrides/pacslb"
install -m 0644 "$REPO/README.md" "$ROOT/usr/share/doc/pacslb/README.md"
install -m 0644 "$REPO/docs/operations.md" "$ROOT/usr/share/doc/pacslb/operations.md"
printf 'pacslb (%s) unstable; urgency=medium\n\n  * Release %s (built from the pacslb repository).\n\n -- pacslb developers <pacslb@example.org>  %s\n' \
	"$VERSION" "$VERSION" "$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}")" \
	| gzip -9n >"$ROOT/usr/share/doc/pacslb/changelog.Debian.gz"
chmod 0644 "$ROOT/usr/share/doc/pacslb/changelog.Debian.gz"

install -m 0755 "$HERE/postinst" "$HERE/prerm" "$HERE/postrm" "$ROOT/DEBIAN/"
echo /etc/pacslb/pacslb.yaml >"$ROOT/DEBIAN/conffiles"
SIZE="$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" -e "s/@PYMINOR@/$PYMINOR/g" -e "s/@PYNEXT@/$PYNEXT/g" \
	"$HERE/control.in" >"$ROOT/DEBIAN/control"
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort | xargs -d '\n' md5sum) \
	>"$ROOT/DEBIAN/md5sums"

dpkg-deb --root-owner-group "-Z${DEB_COMPRESSION:-gzip}" "-z${DEB_COMPRESSION_LEVEL:-9}" --build "$ROOT" "$DEB" >/dev/null
rm -rf "$ROOT" "$OUT/wheel" "$OUT/runtime.lock"
echo "$DEB"
