#!/usr/bin/env bash
# pam_valgrind.sh BUILD SOURCE: the pamtester path under valgrind.  Runs
# pam_dovecot.sh (first 3 hard-password users, wrong password, CRLF, scope)
# and pam_entra.sh with O365_WRAP set to valgrind, so pamtester and the
# pam_o365.so it loads run under memcheck: any memory error or definite /
# indirect leak makes pamtester exit 99, which those scripts report.
# When the valgrind runner already sets O365_WRAP, they run under it anyway.
set -euo pipefail
BUILD=${1:?usage: pam_valgrind.sh BUILD SOURCE}
SRC=${2:?usage: pam_valgrind.sh BUILD SOURCE}
[ -f "$BUILD/pam_o365/pam_o365.so" ] || { echo "FAIL: pam_o365.so not built"; exit 1; }
if ldd "$BUILD/pam_o365/pam_o365.so" | grep libasan >/dev/null; then
	echo "SKIP: a sanitized build (valgrind and ASan do not mix)"
	exit 0
fi
if [ -n "${O365_WRAP:-}" ]; then
	echo "SKIP: O365_WRAP is set; the other pam_*.sh already run under it"
	exit 0
fi
command -v valgrind >/dev/null || { echo "FAIL: valgrind missing"; exit 1; }
export O365_WRAP="valgrind -q --error-exitcode=99 --leak-check=full \
--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect"
export O365_PAM_QUICK=3
bash "$SRC/tests/integration/pam_dovecot.sh" "$BUILD" "$SRC"
bash "$SRC/tests/integration/pam_entra.sh" "$BUILD" "$SRC"
echo PASS
