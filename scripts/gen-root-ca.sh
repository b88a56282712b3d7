#!/usr/bin/env bash
#
# gen-root-ca.sh - create a self-signed ECDSA root CA for mtls-mesh with
# nothing but OpenSSL. Run with --help for the full description.
set -euo pipefail

# Locate lib/common.sh next to this script (following symlinks to it).
src=${BASH_SOURCE[0]}
while [[ -L $src ]]; do
    link_dir=$(cd -P -- "$(dirname -- "$src")" && pwd)
    src=$(readlink -- "$src")
    [[ $src == /* ]] || src=$link_dir/$src
done
SCRIPT_DIR=$(cd -P -- "$(dirname -- "$src")" && pwd)
if [[ ! -r $SCRIPT_DIR/lib/common.sh ]]; then
    printf '%s: error: %s is missing; keep the lib/ directory next to this script\n' \
        "${0##*/}" "$SCRIPT_DIR/lib/common.sh" >&2
    exit 1
fi
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"

usage() {
    cat <<EOF
Usage: $PROG DIR [--curve P-384|P-521] [--cn NAME] [--days N]

Create a self-signed ECDSA root certificate authority for mtls-mesh in DIR.
Only the 'openssl' command (OpenSSL 3.0 or newer) is needed.

Arguments:
  DIR              Directory for the CA files. Created (mode 0700) if missing.

Options:
  --curve CURVE    Curve of the CA key: P-384 (default) or P-521.
                   P-384 roots are signed with ecdsa-with-SHA384,
                   P-521 roots with ecdsa-with-SHA512.
  --cn NAME        Common name of the root (default: "mtls-mesh Root CA").
  --days N         Validity in days (default: 3650, i.e. about 10 years).
  -h, --help       Show this help and exit.

Files produced (existing files are never overwritten; the script refuses):
  DIR/ca.key       The CA private key: ECDSA, PKCS#8 PEM, mode 0600. It is
                   created under umask 077, so it is never readable by others,
                   not even briefly. Keep it secret and backed up.
  DIR/ca.crt       The self-signed root certificate (PEM, mode 0644):
                     basicConstraints  critical, CA:TRUE, pathlen:0
                     keyUsage          critical, keyCertSign, cRLSign
                     subjectKeyIdentifier
                   Give this file (or its fingerprint) to every service.

The script prints the SHA-256 fingerprint of the root certificate (DER),
both as OpenSSL shows it (AB:CD:...) and as lowercase hex without colons,
the form that 'mtls-server'/'mtls-client --ca-fingerprint <hex>' take.

Examples:
  $PROG ./pki
  $PROG ./pki --curve P-521 --cn "Example Corp Mesh Root" --days 7300

Next steps:
  sign-server-cert.sh DIR NAME --dns HOST [--ip ADDR] [--spiffe-id ID]
  sign-client-cert.sh DIR NAME --spiffe-id ID
  mtls-ca --root-cert DIR/ca.crt --root-key DIR/ca.key ...   (use this root in the CA service)

Check the result:
  openssl x509 -in DIR/ca.crt -noout -text
EOF
}

dir=
curve=P-384
cn="mtls-mesh Root CA"
days=3650

while (($#)); do
    # Accept --option=value as well as --option value.
    if [[ $1 == --*=* ]]; then
        set -- "${1%%=*}" "${1#*=}" "${@:2}"
    fi
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --curve)
        need_value "$1" "$#" "${2-}"
        curve=$2
        shift 2
        ;;
    --cn)
        need_value "$1" "$#" "${2-}"
        cn=$2
        shift 2
        ;;
    --days)
        need_value "$1" "$#" "${2-}"
        days=$2
        shift 2
        ;;
    --)
        shift
        break
        ;;
    -*)
        usage_error "unknown option '$1'"
        ;;
    *)
        [[ -z $dir ]] || usage_error "unexpected argument '$1' (DIR is already '$dir')"
        dir=$1
        shift
        ;;
    esac
done
# Anything after "--" is positional.
while (($#)); do
    [[ -z $dir ]] || usage_error "unexpected argument '$1' (DIR is already '$dir')"
    dir=$1
    shift
done

[[ -n $dir ]] || usage_error "missing DIR (the directory to create the root CA in)"
validate_curve "$curve" P-384 P-521
validate_days "$days"
if [[ $cn =~ [[:cntrl:]] ]]; then
    usage_error "--cn must not contain control characters"
fi
if ((${#cn} > 64)); then
    usage_error "--cn is ${#cn} characters long; X.509 allows at most 64"
fi

case $curve in
P-384) digest=sha384 ;;
P-521) digest=sha512 ;;
*) die "internal error: unexpected curve '$curve'" ;;
esac

require_openssl

if [[ -e $dir && ! -d $dir ]]; then
    die "'$dir' exists but is not a directory"
fi
key="$dir/ca.key"
crt="$dir/ca.crt"
refuse_existing "$key" "$crt"
mkdir -p -- "$dir" || die "cannot create directory '$dir'"

make_workdir "$dir"

cat >"$WORKDIR/ca.cnf" <<'EOF'
# OpenSSL configuration used by gen-root-ca.sh (self-contained; the system
# openssl.cnf is not consulted).
[req]
distinguished_name = req_dn
string_mask        = utf8only
utf8               = yes
x509_extensions    = v3_root

[req_dn]

[v3_root]
basicConstraints     = critical, CA:TRUE, pathlen:0
keyUsage             = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF

gen_ec_key "$curve" "$WORKDIR/ca.key"
serial=$(random_serial)
subj="/CN=$(dn_escape "$cn")"
run_openssl "creating the self-signed root certificate" req -new -x509 \
    -config "$WORKDIR/ca.cnf" -key "$WORKDIR/ca.key" -utf8 \
    -subj "$subj" -"$digest" -days "$days" \
    -set_serial "0x$serial" -out "$WORKDIR/ca.crt"
chmod 644 "$WORKDIR/ca.crt"

# Self-check before publishing anything.
run_openssl "verifying the new root certificate" verify -x509_strict \
    -CAfile "$WORKDIR/ca.crt" "$WORKDIR/ca.crt"

publish "$WORKDIR/ca.key" "$key"
if ! (publish "$WORKDIR/ca.crt" "$crt"); then
    rm -f -- "$key"
    exit 1
fi

cert_fingerprint "$crt"
subject=$(openssl_field "$crt" -subject -nameopt RFC2253,-esc_msb) || subject="?"
serial_out=$(openssl_field "$crt" -serial) || serial_out="?"
not_after=$(openssl_field "$crt" -enddate) || not_after="?"

cat <<EOF
Created a self-signed root CA in $dir
  private key  $key  (ECDSA $curve, PKCS#8 PEM, mode 0600; keep it secret)
  certificate  $crt
  subject      $subject
  serial       $serial_out
  signature    ecdsa-with-${digest^^}
  not after    $not_after

SHA-256 fingerprint of the root certificate (DER):
  $FP_COLON
  $FP_HEX

Pass the hex form to services as --ca-fingerprint $FP_HEX
Sign certificates:  $SCRIPT_DIR/sign-server-cert.sh $dir NAME --dns HOST
                    $SCRIPT_DIR/sign-client-cert.sh $dir NAME --spiffe-id spiffe://mesh.local/...
EOF
